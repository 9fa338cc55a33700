/**
 * What a batch's frames cost on the worker wire: a gateway → worker batch
 * message as the native dialect sends it (identity, delimiter, marker,
 * header, one frame per item) against the same bytes with the items packed
 * into one frame, ROUTER → DEALER over ipc in one process, one message at a
 * time. CPU of the whole process (sender, receiver and both I/O threads)
 * per message, median of 3 runs of 5,000 messages, for batches of 1 to 128
 * items of 3 doubles each. Answers whether packing the items into one frame
 * (a change to both worker runtimes) would pay.
 *
 *   node --import tsx bench/micro/zmq-frames.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Dealer, Router } from "zeromq";
import { median } from "../lib/stats.js";

const MESSAGES = 5_000;
const RUNS = 3;
const SIZES = [1, 7, 30, 128];
const ITEM = Buffer.from(new Float64Array([1, 2, 3]).buffer);

const dir = mkdtempSync(join(tmpdir(), "zmq-frames-"));
const endpoint = `ipc://${join(dir, "s.sock")}`;
const router = new Router();
const dealer = new Dealer();
try {
  await router.bind(endpoint);
  dealer.connect(endpoint);
  await dealer.send(["hello"]);
  const [identity] = await router.receive();

  /** CPU µs per message for `frames`, sent and received one at a time. */
  const cpuPerMessage = async (frames: Buffer[]): Promise<number> => {
    const start = process.cpuUsage();
    for (let i = 0; i < MESSAGES; i++) {
      await router.send(frames);
      await dealer.receive();
    }
    const used = process.cpuUsage(start);
    return (used.user + used.system) / MESSAGES;
  };

  const head = [identity!, Buffer.alloc(0), Buffer.alloc(8, 1), Buffer.alloc(40, 2)];
  console.log("| items | frames | CPU µs per message, one frame per item | CPU µs per message, items packed in one frame | difference per item |");
  console.log("|--:|--:|--:|--:|--:|");
  for (const items of SIZES) {
    const separate = [...head, ...Array.from({ length: items }, () => Buffer.from(ITEM))];
    const packed = [...head, Buffer.concat(Array.from({ length: items }, () => ITEM))];
    const a: number[] = [];
    const b: number[] = [];
    // Alternate, so a drift of the machine's speed falls on both.
    for (let r = 0; r < RUNS; r++) {
      a.push(await cpuPerMessage(separate));
      b.push(await cpuPerMessage(packed));
    }
    const ma = median(a);
    const mb = median(b);
    console.log(`| ${items} | ${separate.length} | ${ma.toFixed(1)} | ${mb.toFixed(1)} | ${((ma - mb) / items).toFixed(2)} |`);
  }
} finally {
  router.close();
  dealer.close();
  rmSync(dir, { recursive: true, force: true });
}
