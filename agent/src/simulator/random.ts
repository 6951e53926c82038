/**
 * A small seedable PRNG (sfc32, seeded through splitmix32) for simulations that must replay exactly:
 * the same seed gives the same stream on every platform, which `Math.random` cannot.
 */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** Every bit of a safe-integer seed counts (the high word too); a fraction is dropped. */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    const whole = Math.trunc(seed);
    let state = (whole >>> 0) ^ Math.imul(Math.floor(whole / 0x1_0000_0000) >>> 0, 0x85ebca6b);
    const splitmix32 = (): number => {
      state = (state + 0x9e3779b9) | 0;
      let t = state ^ (state >>> 16);
      t = Math.imul(t, 0x21f0aaad);
      t ^= t >>> 15;
      t = Math.imul(t, 0x735a2d97);
      return (t ^ (t >>> 15)) | 0;
    };
    this.a = splitmix32();
    this.b = splitmix32();
    this.c = splitmix32();
    this.d = splitmix32();
    // sfc32's authors discard the first outputs so that similar seeds have drifted apart.
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /** A uniform integer in [0, 2^32). */
  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform number in [0, 1). */
  next(): number {
    return this.uint32() / 0x1_0000_0000;
  }

  /** A uniform integer in [min, max], both included. */
  int(min: number, max: number): number {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min > max) {
      throw new RangeError(`int(${min}, ${max}): need safe integers with min <= max`);
    }
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** A uniform element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick: the list is empty');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** True with probability `p` (0 never, 1 always). */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** An exponentially distributed wait with the given mean: the gap between Poisson events. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next());
  }
}
