// Shared state and hooks: who is signed in, hash routes, data that refreshes itself.
import { createContext } from "preact";
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks";
import { Unauthorized, Unreachable, type Me } from "./api.js";

export interface Session {
  me: Me;
  /** Sign out (after a 401, with a message saying why). */
  end: (message?: string) => void;
  /** Whether the master answered the last request. */
  setReachable: (reachable: boolean) => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("no session");
  return session;
}

export function readHash(): { path: string; params: URLSearchParams } {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [path = "/", search = ""] = raw.split("?");
  return { path, params: new URLSearchParams(search) };
}

export function useHashRoute(): { path: string; params: URLSearchParams } {
  const [route, setRoute] = useState(readHash);
  useEffect(() => {
    const onChange = () => setRoute(readHash());
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  updatedAt: Date | undefined;
  reload: () => void;
}

/**
 * Load now and every `intervalMs`, keeping the last data on screen while the next
 * load runs (no flicker, no layout shift). While the tab is hidden it stops; shown
 * again, it loads at once and goes on. A 401 ends the session.
 */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number, key: string): Polled<T> {
  const session = useSession();
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [updatedAt, setUpdatedAt] = useState<Date | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    setData(undefined);
    setError(undefined);
  }, [key]);
  useEffect(() => {
    let alive = true;
    let loading = false;
    let timer: number | undefined;
    const run = async () => {
      window.clearTimeout(timer);
      timer = undefined;
      if (loading) return;
      loading = true;
      try {
        const value = await loadRef.current();
        if (!alive) return;
        setData(value);
        setError(undefined);
        setUpdatedAt(new Date());
        session.setReachable(true);
      } catch (failure) {
        if (!alive) return;
        if (failure instanceof Unauthorized) return session.end("Your session ended (the token expired or was revoked). Sign in again.");
        if (failure instanceof Unreachable) session.setReachable(false);
        setError((failure as Error).message);
      } finally {
        loading = false;
      }
      if (alive && !document.hidden) timer = window.setTimeout(run, intervalMs);
    };
    const onVisibility = () => {
      if (document.hidden) {
        window.clearTimeout(timer);
        timer = undefined;
      } else if (timer === undefined) {
        void run();
      }
    };
    document.addEventListener("visibilitychange", onVisibility);
    void run();
    return () => {
      alive = false;
      window.clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [key, tick, intervalMs]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data, error, updatedAt, reload };
}

/** A short, still distinctive form of an id: its random tail (ids begin with their time). */
export function shortId(id: string): string {
  return id.slice(-8);
}

/** "12 s ago", "3 min ago", "2 h ago". */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "–";
  const seconds = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} d ago`;
}

/**
 * "2026-12-06 17:56:10 UTC": an ISO date, a 24-hour time and the zone's name, never a
 * form that reads differently in another country (12/6/26). In the browser's zone, or in
 * `timeZone` (a schedule's own).
 */
export function time(iso: string | null | undefined, timeZone?: string): string {
  if (!iso) return "–";
  const parts = new Intl.DateTimeFormat("en-US", {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
    timeZoneName: "short",
    ...(timeZone ? { timeZone } : {}),
  }).formatToParts(new Date(iso));
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? "";
  return `${part("year")}-${part("month")}-${part("day")} ${part("hour")}:${part("minute")}:${part("second")} ${part("timeZoneName")}`;
}
