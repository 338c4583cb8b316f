/**
 * A clock that stands still until the test moves it, for code that takes a `() => number` clock (epoch ms):
 * the test decides exactly when "later" is, instead of sleeping until it is.
 */
export class ManualClock {
  constructor(private at: number = Date.now()) {}

  /** Pass this where the code wants a clock. */
  readonly now = (): number => this.at;

  advance(ms: number): void {
    this.at += ms;
  }
}
