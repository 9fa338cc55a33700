import test from "ava";
import { backoffDelayMs, RECONNECT_BASE_DELAY_MS, RECONNECT_MAX_DELAY_MS } from "../../core/backoff.js";

test("reconnect backoff grows exponentially, is jittered, and is capped", (t) => {
  t.is(backoffDelayMs(0, () => 0), RECONNECT_BASE_DELAY_MS / 2);
  t.is(backoffDelayMs(0, () => 1), RECONNECT_BASE_DELAY_MS);
  t.is(backoffDelayMs(3, () => 1), RECONNECT_BASE_DELAY_MS * 8);
  t.is(backoffDelayMs(100, () => 1), RECONNECT_MAX_DELAY_MS);
  t.is(backoffDelayMs(100, () => 0), RECONNECT_MAX_DELAY_MS / 2);
});
