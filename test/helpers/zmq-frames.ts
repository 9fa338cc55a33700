/** Frame helpers for tests that play a ZeroMQ peer by hand (a Clipper v3 container, a raw worker). */
import type { Dealer } from "zeromq";

/** The bytes of a hex string; blanks are ignored, so a frame can be written in readable groups. */
export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ""), "hex");

/** The empty delimiter frame a Dealer sends before a Clipper v3 message. */
export const E = Buffer.alloc(0);

/** Receives one message as hex frames, or fails after a bounded wait. */
export async function receive(d: Dealer): Promise<string[]> {
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no message within 5 s")), 5_000).unref());
  const frames = await Promise.race([d.receive(), timeout]);
  return frames.map((f) => f.toString("hex"));
}
