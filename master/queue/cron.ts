// Cron expressions with time zones (cron-parser): validation and the next tick after a moment.
import { CronExpressionParser } from "cron-parser";

export class CronError extends Error {
  constructor(
    readonly field: "cron" | "timezone",
    message: string,
  ) {
    super(message);
  }
}

export function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat("en", { timeZone: timezone });
  } catch {
    throw new CronError("timezone", `unknown time zone ${timezone} (use an IANA name such as Europe/Berlin or UTC)`);
  }
}

/** The first tick of `cron` in `timezone` strictly after `after`; throws CronError for a bad expression or zone. */
export function nextTick(cron: string, timezone: string, after: Date): Date {
  checkTimezone(timezone);
  if (cron.trim().split(/\s+/).length > 6) throw new CronError("cron", "a cron expression has 5 fields (or 6 with seconds)");
  try {
    return CronExpressionParser.parse(cron, { currentDate: after, tz: timezone }).next().toDate();
  } catch (error) {
    throw new CronError("cron", `not a valid cron expression: ${(error as Error).message}`);
  }
}

/** How many ticks `cron` has within one minute: more than one only with a seconds field (API.md §4 limits clients to one). */
export function ticksPerMinute(cron: string): number {
  try {
    return CronExpressionParser.parse(cron).fields.second.values.length;
  } catch (error) {
    throw new CronError("cron", `not a valid cron expression: ${(error as Error).message}`);
  }
}
