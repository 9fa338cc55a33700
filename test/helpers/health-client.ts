import { credentials, makeGenericClientConstructor, type Client, type ClientReadableStream } from "@grpc/grpc-js";

const STATUS = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
/** Longest time {@link HealthClient.until} polls, in ms. */
const UNTIL_TIMEOUT_MS = 15_000;

const encodeRequest = (service: string): Buffer => Buffer.concat([Buffer.from([0x0a, Buffer.byteLength(service)]), Buffer.from(service)]);
const decodeStatus = (b: Buffer): number => (b.length >= 2 && b[0] === 0x08 ? b[1]! : 0);

/**
 * A minimal grpc.health.v1 client (Check and Watch). Messages are encoded
 * by hand: the request holds one string field (1) and the reply one enum
 * field (1).
 */
export class HealthClient {
  readonly #client: Client & Record<string, Function>;

  constructor(address: string) {
    const Ctor = makeGenericClientConstructor(
      {
        check: {
          path: "/grpc.health.v1.Health/Check",
          requestStream: false,
          responseStream: false,
          requestSerialize: encodeRequest,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: decodeStatus,
        },
        watch: {
          path: "/grpc.health.v1.Health/Watch",
          requestStream: false,
          responseStream: true,
          requestSerialize: encodeRequest,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: decodeStatus,
        },
      },
      "grpc.health.v1.Health",
    );
    this.#client = new Ctor(address, credentials.createInsecure()) as Client & Record<string, Function>;
  }

  check(service: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#client.check!(service, { deadline: new Date(Date.now() + 5_000) }, (err: Error | null, s: number) =>
        err === null ? resolve(STATUS[s] ?? String(s)) : reject(err),
      );
    });
  }

  /** Opens a Watch stream: `onStatus` hears each status the server sends. Cancel the stream when done. */
  watch(service: string, onStatus: (status: string) => void): ClientReadableStream<number> {
    const stream = this.#client.watch!(service) as ClientReadableStream<number>;
    stream.on("data", (s: number) => onStatus(STATUS[s] ?? String(s)));
    stream.on("error", () => {});
    return stream;
  }

  /** Polls until the status is `want` or the bounded wait ends; returns the last status seen. */
  async until(service: string, want: string): Promise<string> {
    const end = Date.now() + UNTIL_TIMEOUT_MS;
    let last = "";
    while (Date.now() < end) {
      last = await this.check(service).catch((e: Error) => `error: ${e.message}`);
      if (last === want) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    return last;
  }

  close(): void {
    this.#client.close();
  }
}
