// When a scheduled send may be due (SPEC §3 `send_at`): the bounds a client's time must fall within.

/** How far in the past a `send_at` may lie and still be sent at once: clients' clocks disagree with ours. */
export const SEND_AT_SKEW_MS = 60_000;

/** MESSAGING_SCHEDULE_MAX_DAYS when not set (SPEC §3: 35 days). */
export const DEFAULT_SCHEDULE_MAX_DAYS = 35;

const DAY_MS = 86_400_000;

/**
 * Why a `send_at` cannot be accepted at `now` (ms) with schedules bounded to `maxDays` ahead, or null when it
 * can. More than SEND_AT_SKEW_MS in the past is refused rather than sent late: a client that meant "tomorrow"
 * and got the date wrong must hear about it. Within the skew it is sent at once.
 */
export function sendAtProblem(sendAt: Date, now: number, maxDays: number): string | null {
  const at = sendAt.getTime();
  if (at < now - SEND_AT_SKEW_MS) return `must not be more than ${SEND_AT_SKEW_MS / 1000} s in the past`;
  if (at > now + maxDays * DAY_MS) return `must be at most ${maxDays} day${maxDays === 1 ? "" : "s"} ahead`;
  return null;
}
