// The calls waiting on a worker thread's answers, by id: the reader thread's reads
// (sqlite/reader.ts) and the store thread's verbs (thread/client.ts). The thread is held while
// a call waits and let go when none does, so that an idle thread never keeps the process from
// exiting; once the thread is gone, the calls waiting and every later one are refused with why.
import type { Worker } from "node:worker_threads";

export interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

export class ThreadCalls<T> {
  private readonly waiting = new Map<number, Waiter<T>>();
  private nextId = 1;
  private goneWith: Error | undefined;

  constructor(private readonly thread: Worker) {}

  /** Why the thread is gone; undefined while it runs. */
  get gone(): Error | undefined {
    return this.goneWith;
  }

  /** Send a call (`post` its message, with the call's id) and wait for its answer; a post that throws refuses this call alone. */
  call(post: (id: number) => void): Promise<T> {
    if (this.goneWith) return Promise.reject(this.goneWith);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      post(id);
      if (this.waiting.size === 0) this.thread.ref();
      this.waiting.set(id, { resolve, reject });
    });
  }

  /** The call an answer is for, no longer waiting (undefined: none waits under that id). */
  settle(id: number): Waiter<T> | undefined {
    const waiter = this.waiting.get(id);
    this.waiting.delete(id);
    this.release();
    return waiter;
  }

  /**
   * Let the thread go while no call waits. Node holds a Worker again when a 'message'
   * listener is added: call this after adding the listeners, not before.
   */
  release(): void {
    if (this.waiting.size === 0 && !this.goneWith) this.thread.unref();
  }

  /** The thread is gone: every waiting call is refused with `error`. False when it was gone already. */
  fail(error: Error): boolean {
    if (this.goneWith) return false;
    this.goneWith = error;
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
    return true;
  }
}
