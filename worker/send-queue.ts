/**
 * Serializes sends on one zeromq socket. zeromq 6 allows a single pending
 * send per socket and throws EBUSY on a second one (toolchain.md §2 pitfall
 * 2); heartbeats, results and drain notices come from independent timers and
 * batches, so they wait their turn here.
 */

/** The part of a zeromq socket the queue uses. */
export interface Sender {
  send(frames: Buffer[]): Promise<void>;
}

/**
 * FIFO of outgoing messages for one socket. Callers bound what they enqueue
 * (heartbeats and registrations are coalesced by the runtime, results by its
 * concurrency), so the queue itself has no limit.
 */
export class SendQueue {
  readonly #socket: Sender;
  readonly #onError: (err: unknown) => void;
  #tail: Promise<unknown> = Promise.resolve();
  #queued = 0;
  #closed = false;

  constructor(socket: Sender, onError: (err: unknown) => void) {
    this.#socket = socket;
    this.#onError = onError;
  }

  /** Messages waiting or being sent. */
  get depth(): number {
    return this.#queued;
  }

  /**
   * Queues `frames`; resolves true once zeromq accepted them, false when
   * the send failed or the queue was closed first. Never rejects.
   */
  send(frames: Buffer[]): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    this.#queued++;
    const done = this.#tail.then(async () => {
      try {
        if (this.#closed) return false;
        await this.#socket.send(frames);
        return true;
      } catch (err) {
        // A send cut short by close() is expected; anything else is worth a log line.
        if (!this.#closed) this.#onError(err);
        return false;
      } finally {
        this.#queued--;
      }
    });
    this.#tail = done;
    return done;
  }

  /** Resolves once everything queued so far has been sent (or dropped). */
  async flushed(): Promise<void> {
    await this.#tail;
  }

  /** Drops what is still queued; call before closing the socket. */
  close(): void {
    this.#closed = true;
  }
}
