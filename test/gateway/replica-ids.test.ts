/** Replica ids from a real redis-server's counters, and provisional ids while it is down. */
import test from "ava";
import { pino } from "pino";
import { connectRedis } from "../../core/redis-client.js";
import { PROVISIONAL_BASE, RedisReplicaIds } from "../../gateway/replica-ids.js";
import { redisDb } from "../helpers/redis-dump.js";
import { TestRedis } from "../helpers/redis-server.js";

test("ids count per model version in DB 8, shared by every source on one Redis; while Redis is down a registration gets a provisional id", async (t) => {
  const redis = await TestRedis.start();
  const a = connectRedis(redis.url, { name: "ids-a" });
  const b = connectRedis(redis.url, { name: "ids-b" });
  a.on("error", () => {});
  b.on("error", () => {});
  t.teardown(async () => {
    a.disconnect();
    b.disconnect();
    await redis.destroy();
  });
  const log = pino({ level: "silent" });
  // Two gateways' sources: the first registration waits for the connection to come up.
  const ga = new RedisReplicaIds(a, "test", log, { waitMs: 5_000 });
  const gb = new RedisReplicaIds(b, "test", log, { waitMs: 5_000 });
  t.deepEqual([await ga.next("m", "1"), await gb.next("m", "1"), await ga.next("m", "1"), await gb.next("m", "2")], [0, 1, 2, 0]);
  const db8 = await redisDb(redis.url, 8);
  t.is(await db8.get("clipper-ts:replica-ids:m:1"), "3");
  db8.disconnect();

  await redis.stop();
  const quick = new RedisReplicaIds(a, "test", log, { waitMs: 200, random: () => 0 });
  const ids = [await quick.next("m", "1"), await quick.next("m", "1")];
  t.deepEqual(ids, [PROVISIONAL_BASE, PROVISIONAL_BASE + 1]);
  // A source whose random start differs draws elsewhere in the range.
  const other = await new RedisReplicaIds(a, "test", log, { waitMs: 200, random: () => 0.5 }).next("m", "1");
  t.true(other > PROVISIONAL_BASE + 1000 && other <= 2 ** 31 - 1);
});
