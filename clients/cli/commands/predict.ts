/**
 * `clipper predict APP`: one query from --input, or one per JSON line on
 * stdin, with a progress bar (when stderr is a terminal) and a latency
 * summary.
 */
import { performance } from "node:perf_hooks";
import { Input } from "../../../gen/clipper/v1/input.js";
import { PredictResponse } from "../../../gen/clipper/v1/predict.js";
import { isServiceError, statusName } from "../../client.js";
import { EXIT, fullJson, intOption, predictClient, strOption, usageError, type Command, type Output } from "../cli-kit.js";

/** Calls in flight at once in stdin mode unless --concurrency says otherwise. */
const DEFAULT_CONCURRENCY = 8;
/** Least time between two progress-bar redraws, in ms. */
const PROGRESS_EVERY_MS = 100;
const INPUT_HINT = 'an Input such as {"doubles":[1,2,3]}, {"floats":[0.5]}, {"ints":[1,2]}, {"bytes":"aGk="} or {"text":"hello"}';

type Outcome = { ok: true; response: PredictResponse; ms: number } | { ok: false; code: string; message: string; ms: number };

/** Parses one input: an Input in protobuf JSON, or {"input": Input}. */
function parseInput(text: string): { ok: true; input: Input } | { ok: false; error: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not JSON (${(err as Error).message}); expected ${INPUT_HINT}` };
  }
  if (typeof v === "object" && v !== null && !Array.isArray(v) && "input" in v) v = (v as { input: unknown }).input;
  const keys = typeof v === "object" && v !== null && !Array.isArray(v) ? Object.keys(v) : [];
  if (keys.length !== 1 || !["doubles", "floats", "ints", "bytes", "text"].includes(keys[0]!)) return { ok: false, error: `expected ${INPUT_HINT}` };
  return { ok: true, input: Input.fromJSON(v) };
}

export const predictCommand: Command = {
  name: "predict",
  args: "APP",
  summary: "Sends queries to an application: --input for one, or JSON lines on stdin for many (with a latency summary).",
  details: [
    "Examples:",
    `  clipper predict demo --input '{"doubles":[1,2,3]}'`,
    `  printf '{"doubles":[1,2]}\\n{"doubles":[3,4]}\\n' | clipper predict demo --json`,
    "Exit code 1 when any query failed (a default output is an answer, not a failure).",
  ].join("\n"),
  options: {
    input: { type: "string", value: "JSON", help: INPUT_HINT.replace(/^an Input such as /, "the query's input, e.g. ") },
    version: { type: "string", value: "V", help: "pin a model version (default the linked model's current one)" },
    concurrency: { type: "string", value: "N", help: `queries in flight at once for stdin input (default ${DEFAULT_CONCURRENCY})` },
  },
  minArgs: 1,
  maxArgs: 1,
  async run({ positionals, values, globals, out }) {
    const app = positionals[0]!;
    const version = strOption(values, "version");
    const inputText = strOption(values, "input");
    let lines: string[];
    if (inputText !== "") lines = [inputText];
    else if (process.stdin.isTTY === true) throw usageError(`give --input JSON, or JSON lines on stdin (${INPUT_HINT})`);
    else lines = (await readStdin()).split("\n").map((l) => l.trim()).filter((l) => l !== "");
    if (lines.length === 0) throw usageError("no input: stdin was empty");
    const inputs = lines.map((l, i) => {
      const p = parseInput(l);
      if (!p.ok) throw usageError(`${inputText !== "" ? "--input" : `stdin line ${i + 1}`}: ${p.error}`);
      return p.input;
    });
    const concurrency = intOption(values, "concurrency", DEFAULT_CONCURRENCY, 1);
    const client = predictClient(globals);
    try {
      if (inputText !== "") {
        const r = await client.predict({ app, input: inputs[0]!, version });
        out.result(fullJson(r, PredictResponse.toJSON(r)), () =>
          r.default ? `${r.output}\t(default output: ${r.defaultExplanation})` : r.output,
        );
        return EXIT.OK;
      }
      const outcomes = await runMany(inputs, concurrency, (input) => client.predict({ app, input, version }), out);
      const failed = outcomes.filter((o) => !o.ok).length;
      return failed > 0 ? EXIT.FAILED : EXIT.OK;
    } finally {
      client.close();
    }
  },
};

/** Runs every input with at most `concurrency` in flight, printing answers in input order, then a summary. */
async function runMany(inputs: readonly Input[], concurrency: number, send: (input: Input) => Promise<PredictResponse>, out: Output): Promise<Outcome[]> {
  const outcomes: (Outcome | undefined)[] = new Array(inputs.length);
  const progress = new Progress(inputs.length, out.stderr);
  const started = performance.now();
  let next = 0;
  let printed = 0;
  const flush = (): void => {
    while (printed < outcomes.length && outcomes[printed] !== undefined) printOutcome(outcomes[printed++]!, out);
  };
  const lane = async (): Promise<void> => {
    while (next < inputs.length) {
      const i = next++;
      const t0 = performance.now();
      try {
        const response = await send(inputs[i]!);
        outcomes[i] = { ok: true, response, ms: performance.now() - t0 };
      } catch (err) {
        outcomes[i] = isServiceError(err)
          ? { ok: false, code: statusName(err.code), message: err.details || err.message, ms: performance.now() - t0 }
          : { ok: false, code: "INTERNAL", message: (err as Error).message, ms: performance.now() - t0 };
      }
      flush();
      progress.tick();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, inputs.length) }, lane));
  progress.done();
  const done = outcomes as Outcome[];
  out.stderr.write(`${summarize(done, performance.now() - started, out.json)}\n`);
  return done;
}

function printOutcome(o: Outcome, out: Output): void {
  if (o.ok) {
    out.result(fullJson(o.response, PredictResponse.toJSON(o.response)), () => (o.response.default ? `${o.response.output}\t(default)` : o.response.output));
  } else {
    out.result({ error: { code: o.code, message: o.message } }, () => `ERROR ${o.code}: ${o.message}`);
  }
}

/** The latency summary line (JSON with --json). */
function summarize(outcomes: readonly Outcome[], elapsedMs: number, json: boolean): string {
  const ms = outcomes.map((o) => o.ms).sort((a, b) => a - b);
  const q = (p: number): number => ms[Math.min(ms.length - 1, Math.max(0, Math.ceil(p * ms.length) - 1))] ?? 0;
  const ok = outcomes.filter((o) => o.ok && !o.response.default).length;
  const defaults = outcomes.filter((o) => o.ok && o.response.default).length;
  const failed = outcomes.length - ok - defaults;
  const s = {
    count: outcomes.length, ok, defaults, failed,
    seconds: round(elapsedMs / 1000), perSecond: round(outcomes.length / Math.max(elapsedMs / 1000, 1e-9)),
    p50Ms: round(q(0.5)), p90Ms: round(q(0.9)), p99Ms: round(q(0.99)), maxMs: round(ms[ms.length - 1] ?? 0),
  };
  if (json) return JSON.stringify({ summary: s });
  return `${s.count} queries in ${s.seconds} s (${s.perSecond}/s): ${ok} answered, ${defaults} default, ${failed} failed; latency p50 ${s.p50Ms} ms, p90 ${s.p90Ms} ms, p99 ${s.p99Ms} ms, max ${s.maxMs} ms`;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** A one-line progress bar on a terminal; silent otherwise. */
class Progress {
  #done = 0;
  #lastDraw = 0;
  readonly #total: number;
  readonly #stream: NodeJS.WritableStream & { isTTY?: boolean };

  constructor(total: number, stream: NodeJS.WritableStream & { isTTY?: boolean }) {
    this.#total = total;
    this.#stream = stream;
  }

  tick(): void {
    this.#done++;
    const now = performance.now();
    if (this.#stream.isTTY !== true || (now - this.#lastDraw < PROGRESS_EVERY_MS && this.#done < this.#total)) return;
    this.#lastDraw = now;
    const width = 30;
    const filled = Math.round((this.#done / this.#total) * width);
    this.#stream.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${this.#done}/${this.#total}`);
  }

  done(): void {
    if (this.#stream.isTTY === true) this.#stream.write("\r\x1b[2K");
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
