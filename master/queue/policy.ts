// Queue rules from the configuration: retry backoff with jitter, stall grace, aging, leases.
import {
  DEFAULT_AGING_S,
  DEFAULT_NODE_TIMEOUT_S,
  DEFAULT_RETRY_DELAY_S,
  DEFAULT_RETRY_MAX_DELAY_S,
  DEFAULT_STALL_GRACE_S,
} from "../config.js";
import type { QueuePolicy } from "../store/types.js";

/** Retries wait ±20 % around their nominal delay, so a burst of failures does not retry in lockstep. */
export const RETRY_JITTER = 0.2;

export interface BackoffParams {
  retryDelayS: number;
  retryMaxDelayS: number;
}

/** API.md §5: GAFFER_RETRY_DELAY_S × 2^(retry_count−1), capped at GAFFER_RETRY_MAX_DELAY_S, ±20 %. */
export function retryDelayMs(retryCount: number, params: BackoffParams, random: () => number = Math.random): number {
  const exponent = Math.max(0, retryCount - 1);
  const nominalS = Math.min(params.retryDelayS * 2 ** exponent, params.retryMaxDelayS);
  const jitter = 1 + (random() * 2 - 1) * RETRY_JITTER;
  return Math.round(nominalS * 1000 * jitter);
}

/**
 * last_heartbeat is kept to within a tenth of the node timeout (6 s of the default 60):
 * nodes that beat more often than that cost a read, not a write and an fsync.
 */
const HEARTBEAT_WRITES_PER_TIMEOUT = 10;

export interface PolicyParams extends BackoffParams {
  stallGraceS: number;
  agingS: number;
  nodeTimeoutS: number;
}

export function createQueuePolicy(params: PolicyParams, random: () => number = Math.random): QueuePolicy {
  return {
    retryDelayMs: (retryCount) => retryDelayMs(retryCount, params, random),
    stallGraceMs: params.stallGraceS * 1000,
    agingMs: params.agingS * 1000,
    leaseMs: params.nodeTimeoutS * 1000,
    heartbeatWriteMs: (params.nodeTimeoutS * 1000) / HEARTBEAT_WRITES_PER_TIMEOUT,
  };
}

/** The policy of a default configuration: for offline tools, benchmarks and tests. */
export function defaultQueuePolicy(random: () => number = Math.random): QueuePolicy {
  return createQueuePolicy(
    {
      retryDelayS: DEFAULT_RETRY_DELAY_S,
      retryMaxDelayS: DEFAULT_RETRY_MAX_DELAY_S,
      stallGraceS: DEFAULT_STALL_GRACE_S,
      agingS: DEFAULT_AGING_S,
      nodeTimeoutS: DEFAULT_NODE_TIMEOUT_S,
    },
    random,
  );
}
