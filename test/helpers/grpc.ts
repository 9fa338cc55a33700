import type { Client, ServiceError } from "@grpc/grpc-js";

/**
 * Calls a unary method of a ts-proto grpc-js client and resolves with the
 * response, or with the ServiceError (never rejects), so tests can assert
 * on codes directly.
 */
export function call<Req, Res>(
  client: Client,
  method: string,
  request: Req,
  options: { deadlineMs?: number } = {},
): Promise<{ ok: true; value: Res } | { ok: false; error: ServiceError }> {
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, Function>)[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    const deadline = new Date(Date.now() + (options.deadlineMs ?? 10_000));
    fn.call(client, request, { deadline }, (err: ServiceError | null, res: Res) => {
      resolve(err === null ? { ok: true, value: res } : { ok: false, error: err });
    });
  });
}
