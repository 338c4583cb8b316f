/**
 * One numbering run at a time per process, shared by every caller that waits for it (store/invoices.ts uses
 * this; docs/scaling.md, "The serial point"). Forty callers whose finalizations commit at about the same moment
 * need one numbering transaction between them, not forty queued on the advisory lock, most finding their invoice
 * already numbered by someone else.
 *
 * Why a joiner is always numbered: a run numbers every invoice committed before it reads the queue (its
 * statements read after it holds the advisory lock). A caller joins only after its finalization committed, and
 * is handed a run that starts after it joined: the next one. Never the run in flight, which may have read the
 * queue before that commit. So when the joined run ends, the caller's invoice was numbered by it, or by an
 * earlier run (this process's, another worker's, the janitor's) that committed before it read the queue.
 * Across processes nothing changes: runs still take the advisory lock, one at a time.
 */

/** What one run did: how many it numbered, and each numbered invoice's number and issue time, by invoice id. */
export interface NumberingRun {
  readonly numbered: number;
  readonly issued: ReadonlyMap<string, { readonly number: string; readonly finalizedAt: Date }>;
}

export class NumberingRuns {
  private inFlight: Promise<NumberingRun> | undefined;
  private next: Promise<NumberingRun> | undefined;
  private started = 0;

  constructor(private readonly execute: () => Promise<NumberingRun>) {}

  /** A run that starts after this call (so it sees everything committed before it), shared with other joiners. */
  join(): Promise<NumberingRun> {
    if (this.next) return this.next;
    if (!this.inFlight) return this.start();
    // The run in flight may have read the queue already: wait for it, then start one for all who joined meanwhile.
    this.next = this.inFlight.then(settled, settled).then(() => {
      this.next = undefined;
      return this.start();
    });
    return this.next;
  }

  /**
   * The run that numbers `invoiceId`, whose finalization committed before this call: the next run, as `join` gives,
   * unless the run in flight turns out to have numbered it. That run may have read the queue after the commit (it
   * was sent before the caller knew of the commit, but took its snapshot later): then its result says so, and the
   * caller need not wait a whole run more. Nothing about the numbers changes, only how long a caller waits.
   */
  joinFor(invoiceId: string): Promise<NumberingRun> {
    const inFlight = this.inFlight;
    const next = this.join();
    if (!inFlight || inFlight === next) return next;
    return inFlight.then(
      (run) => {
        if (!run.issued.has(invoiceId)) return next;
        next.catch(settled); // still runs for the others who joined it; its failure is theirs, not this caller's
        return run;
      },
      () => next,
    );
  }

  /** Runs started so far (the numbering transactions this process opened), for tests and benchmarks. */
  get runsStarted(): number {
    return this.started;
  }

  private start(): Promise<NumberingRun> {
    this.started += 1;
    const run = this.execute().finally(() => {
      if (this.inFlight === run) this.inFlight = undefined;
    });
    this.inFlight = run;
    return run;
  }
}

function settled(): void {}
