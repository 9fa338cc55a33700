import test from "ava";
import { SendQueue } from "../../worker/send-queue.js";

/** A socket that, like zeromq 6, throws EBUSY on a second send while one is pending. */
function strictSocket() {
  const sent: string[] = [];
  let busy = false;
  return {
    sent,
    async send(frames: Buffer[]): Promise<void> {
      if (busy) throw Object.assign(new Error("Socket is busy writing"), { code: "EBUSY" });
      busy = true;
      await new Promise((r) => setTimeout(r, 1));
      sent.push(String(frames[0]));
      busy = false;
    },
  };
}

test("concurrent sends go out one at a time, in order", async (t) => {
  const socket = strictSocket();
  const errors: unknown[] = [];
  const q = new SendQueue(socket, (e) => errors.push(e));
  const results = await Promise.all(["a", "b", "c", "d"].map((x) => q.send([Buffer.from(x)])));
  t.deepEqual(results, [true, true, true, true]);
  t.deepEqual(socket.sent, ["a", "b", "c", "d"]);
  t.deepEqual(errors, []);
  t.is(q.depth, 0);
});

test("after close, queued and new sends resolve false without reaching the socket", async (t) => {
  const socket = strictSocket();
  const q = new SendQueue(socket, () => {});
  t.true(await q.send([Buffer.from("a")]));
  const queued = q.send([Buffer.from("b")]);
  q.close();
  t.false(await queued);
  t.false(await q.send([Buffer.from("c")]));
  t.deepEqual(socket.sent, ["a"]);
});

test("a failed send is reported and does not block the ones behind it", async (t) => {
  const errors: unknown[] = [];
  let n = 0;
  const socket = {
    async send(): Promise<void> {
      if (n++ === 0) throw new Error("EAGAIN");
    },
  };
  const q = new SendQueue(socket, (e) => errors.push(e));
  t.deepEqual(await Promise.all([q.send([]), q.send([])]), [false, true]);
  t.is(errors.length, 1);
});
