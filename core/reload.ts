import type { ServerAuth } from "./auth/server-auth.js";
import type { Logger } from "./telemetry/logger.js";
import type { ServerTls } from "./tls/server-tls.js";

/**
 * What a server re-reads on SIGHUP: its tokens (when it has any) and its
 * certificate. Each keeps what is in force when its new files do not load.
 */
export async function reloadAll(log: Logger, auth: ServerAuth | null, tls: ServerTls | null): Promise<void> {
  await auth?.reload(log);
  if (tls === null) return;
  const r = await tls.reload();
  if (r.ok) log.info("TLS certificate reloaded");
  else log.error({ error: r.error }, "TLS certificate not reloaded; the one in force stays");
}
