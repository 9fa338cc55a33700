/**
 * One send queue per worker peer, so a peer that stops reading holds up
 * only its own messages. Sends never wait on a socket: `trySend` either
 * queues the message in ZeroMQ at once or says the peer is at its
 * high-water mark ("blocked"); then that peer's messages wait here, in
 * order, and are retried every few ms. A peer whose backlog does not move
 * for `stallMs`, or outgrows `maxBacklog`, is given up (`onStuck`) and its
 * waiting messages fail.
 */

/** What one attempt did: queued in ZeroMQ, refused for now (peer at its high-water mark), or failed for good. */
export type SendAttempt = "sent" | "blocked" | "failed";

export interface PeerSendLimits {
  /** Most messages waiting for one peer; one more gives the peer up. */
  readonly maxBacklog: number;
  /** Longest a peer's backlog may stay without progress before the peer is given up, ms. */
  readonly stallMs: number;
  /** How often blocked peers are retried, ms. */
  readonly retryMs: number;
}

interface Waiting {
  readonly frames: Buffer[];
  readonly done: (sent: boolean) => void;
}

/**
 * - idle: no message waiting (the queue is then dropped from the map);
 * - sending: an attempt is under way, later messages wait behind it;
 * - blocked: the peer refused; retried by the timer until it moves or stalls.
 */
interface PeerQueue {
  readonly identity: Buffer;
  readonly waiting: Waiting[];
  state: "sending" | "blocked";
  /** When the peer last refused with no progress since, ms; 0 while it moves. */
  blockedSince: number;
}

export class PeerSendQueues {
  readonly #trySend: (identity: Buffer, frames: Buffer[]) => Promise<SendAttempt>;
  readonly #onStuck: (identity: Buffer, why: string) => void;
  readonly #limits: PeerSendLimits;
  readonly #peers = new Map<string, PeerQueue>();
  #retry: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(
    trySend: (identity: Buffer, frames: Buffer[]) => Promise<SendAttempt>,
    onStuck: (identity: Buffer, why: string) => void,
    limits: PeerSendLimits,
  ) {
    this.#trySend = trySend;
    this.#onStuck = onStuck;
    this.#limits = limits;
  }

  /** Messages waiting for the peer at `address` (hex identity). */
  backlog(address: string): number {
    return this.#peers.get(address)?.waiting.length ?? 0;
  }

  /** Sends frames to one peer after its earlier messages; resolves false when they could not be delivered to ZeroMQ. */
  send(identity: Buffer, frames: Buffer[]): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    const address = identity.toString("hex");
    let q = this.#peers.get(address);
    if (q !== undefined && q.waiting.length >= this.#limits.maxBacklog) {
      this.#giveUp(address, q, `${q.waiting.length} messages waiting for a peer that does not read`);
      return Promise.resolve(false);
    }
    return new Promise((done) => {
      if (q === undefined) {
        q = { identity, waiting: [{ frames, done }], state: "sending", blockedSince: 0 };
        this.#peers.set(address, q);
        void this.#pump(address, q);
      } else {
        q.waiting.push({ frames, done });
      }
    });
  }

  /** Fails every waiting message and stops retrying. */
  close(): void {
    this.#closed = true;
    if (this.#retry !== null) clearInterval(this.#retry);
    this.#retry = null;
    for (const q of this.#peers.values()) for (const w of q.waiting) w.done(false);
    this.#peers.clear();
  }

  async #pump(address: string, q: PeerQueue): Promise<void> {
    q.state = "sending";
    while (q.waiting.length > 0) {
      const attempt = await this.#trySend(q.identity, q.waiting[0]!.frames);
      // Given up (or closed) while the attempt ran: its messages were failed already.
      if (this.#peers.get(address) !== q) return;
      if (attempt === "blocked") {
        if (q.blockedSince === 0) q.blockedSince = Date.now();
        q.state = "blocked";
        this.#startRetrying();
        return;
      }
      q.blockedSince = 0;
      q.waiting.shift()!.done(attempt === "sent");
    }
    this.#peers.delete(address);
  }

  #startRetrying(): void {
    if (this.#retry !== null) return;
    this.#retry = setInterval(() => this.#retryBlocked(), this.#limits.retryMs);
    this.#retry.unref();
  }

  #retryBlocked(): void {
    const now = Date.now();
    let blocked = 0;
    for (const [address, q] of this.#peers) {
      if (q.state !== "blocked") continue;
      if (now - q.blockedSince >= this.#limits.stallMs) {
        this.#giveUp(address, q, `no message taken for ${now - q.blockedSince} ms`);
        continue;
      }
      blocked++;
      void this.#pump(address, q);
    }
    if (blocked === 0 && this.#retry !== null) {
      clearInterval(this.#retry);
      this.#retry = null;
    }
  }

  #giveUp(address: string, q: PeerQueue, why: string): void {
    this.#peers.delete(address);
    for (const w of q.waiting) w.done(false);
    this.#onStuck(q.identity, why);
  }
}
