import test from "ava";
import { parseConfig, type OptionSpec } from "../../core/config.js";

const SPECS = {
  "allow-things": { kind: "flag", env: "CLIPPER_ALLOW_THINGS", default: "false", help: "allows things" },
  name: { kind: "string", env: "CLIPPER_NAME", default: "", help: "a name" },
} as const satisfies Record<string, OptionSpec>;

const parse = (argv: string[], env: Record<string, string> = {}) => parseConfig("cmd", SPECS, argv, env);

test("a flag takes no value: present is true, absent is its default", (t) => {
  t.like(parse(["--allow-things"]), { kind: "ok", config: { "allow-things": true } });
  t.like(parse([]), { kind: "ok", config: { "allow-things": false } });
  t.is(parse(["--allow-things=yes"]).kind, "error");
});

test("a flag's env variable takes 1/true/0/false in any case; anything else is an error naming the variable", (t) => {
  for (const [text, value] of [["1", true], ["true", true], ["TRUE", true], ["True", true], ["0", false], ["false", false], ["FALSE", false]] as const) {
    t.like(parse([], { CLIPPER_ALLOW_THINGS: text }), { kind: "ok", config: { "allow-things": value } }, text);
  }
  for (const text of ["yes", "on", "2", "", " true"]) {
    const r = parse([], { CLIPPER_ALLOW_THINGS: text });
    t.is(r.kind, "error", JSON.stringify(text));
    if (r.kind === "error") t.regex(r.error, /^CLIPPER_ALLOW_THINGS: /);
  }
  // The flag wins over its env variable.
  t.like(parse(["--allow-things"], { CLIPPER_ALLOW_THINGS: "0" }), { kind: "ok", config: { "allow-things": true } });
});

test("--help shows a flag without a value and the words its env variable takes", (t) => {
  const r = parse(["--help"]);
  t.is(r.kind, "help");
  if (r.kind === "help") t.regex(r.text, /--allow-things +allows things\n +env CLIPPER_ALLOW_THINGS=1\|true\|0\|false, default false/);
});
