import test from "ava";
import { describeRedisTarget, parseRedisUrl, redactRedisUrl, redisUrlUsesTls } from "../../core/redis-url.js";
import { parseConfig, COMMON_OPTIONS } from "../../core/config.js";

test("redis:// and rediss:// name one server, 6379 by default", (t) => {
  const a = parseRedisUrl("redis://:pw@10.0.0.5/2");
  t.true(a.ok);
  if (a.ok) t.deepEqual(a.target, { kind: "direct", tls: false, host: "10.0.0.5", port: 6379 });
  const b = parseRedisUrl("rediss://redis.example:6380");
  t.true(b.ok && b.target.kind === "direct" && b.target.tls && b.target.port === 6380);
});

test("redis+sentinel:// names the sentinels (26379 by default), the master group, the db and both sets of credentials", (t) => {
  const r = parseRedisUrl("redis+sentinel://app:s%40cret@s1:26380,s2,[::1]:26381/mymaster/3?sentinel_username=sen&sentinel_password=p%26w");
  if (!r.ok) return t.fail(r.error);
  t.deepEqual(r.target, {
    kind: "sentinel",
    tls: false,
    sentinels: [{ host: "s1", port: 26380 }, { host: "s2", port: 26379 }, { host: "::1", port: 26381 }],
    name: "mymaster",
    db: 3,
    username: "app",
    password: "s@cret",
    sentinelUsername: "sen",
    sentinelPassword: "p&w",
  });
  t.is(describeRedisTarget(r.target), "master 'mymaster' via sentinels s1:26380,s2:26379,[::1]:26381");
  const s = parseRedisUrl("rediss+sentinel://127.0.0.1:5000/m");
  t.true(s.ok && s.target.kind === "sentinel" && s.target.tls && s.target.db === 0 && s.target.password === "");
});

test("a bad sentinel URL is refused with what is wrong, never echoing a password", (t) => {
  const cases: [string, RegExp][] = [
    ["redis+sentinel://:hunter2@s1:26379", /master group/],
    ["redis+sentinel://:hunter2@s1:26379/", /master group/],
    ["redis+sentinel://s1:26379/my master", /master group/],
    ["redis+sentinel://s1:26379/m/16", /database number 0-15/],
    ["redis+sentinel://s1:26379/m/1/2", /database number/],
    ["redis+sentinel://s1:99999/m", /'s1:99999' is not HOST\[:PORT\]/],
    ["redis+sentinel://s1:26379,,s2/m", /'' is not HOST/],
    ["redis+sentinel:///m", /'' is not HOST/],
    ["redis+sentinel://s1/m?password=x", /unknown parameter 'password'/],
    ["redis+sentinel://:%zz@s1/m", /percent-encoding/],
    ["redis+sentinel://" + Array.from({ length: 17 }, (_, i) => `s${i}`).join(",") + "/m", /at most 16/],
    ["http://:hunter2@s1/m", /scheme must be/],
  ];
  for (const [url, why] of cases) {
    const r = parseRedisUrl(url);
    t.false(r.ok, url);
    if (!r.ok) {
      t.regex(r.error, why, url);
      t.false(r.error.includes("hunter2"), `${url}: the password stays out of the message`);
    }
  }
});

test("the servers' --redis-url takes a sentinel URL and refuses a bad one naming the flag", (t) => {
  const ok = parseConfig("x", COMMON_OPTIONS, ["--redis-url", "redis+sentinel://127.0.0.1:26379/mymaster"], {});
  t.is(ok.kind, "ok");
  const bad = parseConfig("x", COMMON_OPTIONS, [], { CLIPPER_REDIS_URL: "redis+sentinel://127.0.0.1:26379" });
  t.is(bad.kind, "error");
  if (bad.kind === "error") t.regex(bad.error, /^CLIPPER_REDIS_URL: invalid Redis Sentinel URL/);
});

test("TLS is asked for by rediss:// and rediss+sentinel:// only; redaction hides both passwords", (t) => {
  t.true(redisUrlUsesTls("rediss://h"));
  t.true(redisUrlUsesTls("rediss+sentinel://h/m"));
  t.false(redisUrlUsesTls("redis+sentinel://h/m"));
  t.false(redisUrlUsesTls("redis://h"));
  t.is(redactRedisUrl("redis+sentinel://u:pw@s1,s2/m?sentinel_username=a&sentinel_password=spw"), "redis+sentinel://u:***@s1,s2/m?sentinel_username=a&sentinel_password=***");
  t.is(redactRedisUrl("redis://:pw@127.0.0.1:6379"), "redis://:***@127.0.0.1:6379");
  t.is(redactRedisUrl("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
});
