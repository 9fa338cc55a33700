/**
 * The demos `clipper up --demo NAME` can bring up: an app, the model it is
 * linked to, how the replica manager runs its worker, and a call to show.
 */
import { spawnSync } from "node:child_process";
import type { WorkerSpec } from "../../gen/clipper/v1/admin.js";
import { PYTHON_INTERPRETER, PYTHON_WORKER_PACKAGES, PYTHON_WORKER_PATH } from "../../core/python-worker.js";

export interface Demo {
  readonly app: string;
  readonly model: string;
  readonly inputType: string;
  readonly defaultOutput: string;
  /** Shown while deploying: what runs. */
  readonly what: string;
  /** One line for the banner: what the app answers. */
  readonly blurb: string;
  /** The example input as Predict JSON, as Clipper REST JSON, and its answer. */
  readonly input: string;
  readonly clipperInput: string;
  readonly answer: string;
  /** The worker, given the checkout's root. */
  worker(root: string): Partial<WorkerSpec>;
  /** What this host lacks to run the demo, as a message saying how to get it; null when nothing. */
  missing(): string | null;
}

export const DEMOS: Readonly<Record<string, Demo>> = {
  sum: {
    app: "demo",
    model: "sum",
    inputType: "doubles",
    defaultOutput: "-1.0",
    what: "the demo model `sum` (clients/demo/sum-model.js)",
    blurb: "The demo app `demo` (doubles) answers with the sum of its input.",
    input: '{"doubles":[1,2,3]}',
    clipperInput: "[1,2,3]",
    answer: "6",
    worker: (root) => ({ module: `${root}/clients/demo/sum-model.js` }),
    missing: () => null,
  },
  iris: {
    app: "iris",
    model: "iris",
    inputType: "doubles",
    defaultOutput: "unknown",
    what: "the scikit-learn iris classifier (examples/iris/model.py, Python worker)",
    blurb: "The app `iris` (4 doubles: sepal and petal length and width, cm) answers with the species, from a scikit-learn model.",
    input: '{"doubles":[5.1,3.5,1.4,0.2]}',
    clipperInput: "[5.1,3.5,1.4,0.2]",
    answer: "setosa",
    worker: (root) => ({ python: `${root}/examples/iris/model.py` }),
    missing: () => {
      // The worker's own imports, its stubs from gen/python, and scikit-learn.
      const probe = spawnSync(PYTHON_INTERPRETER, ["-c", "import clipper_worker.runtime, sklearn"], {
        env: { ...process.env, PYTHONPATH: PYTHON_WORKER_PATH },
        encoding: "utf8",
        timeout: 30_000,
      });
      if (probe.status === 0) return null;
      const why = (probe.error?.message ?? probe.stderr.trim().split("\n").pop() ?? "").trim();
      return `--demo iris runs a Python model with Debian's ${PYTHON_INTERPRETER}, which cannot (${why}): apt-get install ${PYTHON_WORKER_PACKAGES} python3-sklearn protobuf-compiler, then npm run gen`;
    },
  },
};

/** The demo named `name`, or null. */
export function demoNamed(name: string): Demo | null {
  return Object.hasOwn(DEMOS, name) ? DEMOS[name]! : null;
}
