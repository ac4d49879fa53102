// A clock tests move by hand.
import type { Clock } from "../../master/store/types.js";

export class FakeClock implements Clock {
  private current: number;

  constructor(start = "2026-01-01T10:00:00.000Z") {
    this.current = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  advance(ms: number): void {
    this.current += ms;
  }

  advanceSeconds(seconds: number): void {
    this.advance(seconds * 1000);
  }
}
