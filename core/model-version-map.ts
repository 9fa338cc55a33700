/**
 * A map keyed by model name and version. In-memory state keys on the pair
 * itself rather than on a Redis key spelling (`name:version`), so the
 * layout can change without touching the maps, and no code has to split a
 * joined key to learn the name back.
 */
export class ModelVersionMap<V> {
  readonly #byName = new Map<string, Map<string, V>>();

  get(name: string, version: string): V | undefined {
    return this.#byName.get(name)?.get(version);
  }

  set(name: string, version: string, value: V): this {
    let versions = this.#byName.get(name);
    if (versions === undefined) {
      versions = new Map();
      this.#byName.set(name, versions);
    }
    versions.set(version, value);
    return this;
  }

  /** Removes one entry; true when it was there. */
  delete(name: string, version: string): boolean {
    const versions = this.#byName.get(name);
    if (versions === undefined || !versions.delete(version)) return false;
    // Models come and go: drop empty inner maps so names do not accumulate.
    if (versions.size === 0) this.#byName.delete(name);
    return true;
  }

  /** Number of entries. */
  get size(): number {
    let n = 0;
    for (const versions of this.#byName.values()) n += versions.size;
    return n;
  }

  /** The values of one model name, by version. */
  versionsOf(name: string): IterableIterator<V> {
    return (this.#byName.get(name) ?? EMPTY).values();
  }

  /** Every value, grouped by model name. */
  *values(): IterableIterator<V> {
    for (const versions of this.#byName.values()) yield* versions.values();
  }
}

const EMPTY: ReadonlyMap<string, never> = new Map<string, never>();
