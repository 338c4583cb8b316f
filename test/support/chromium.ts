/**
 * Headless Chromium for browser tests, through playwright-core with the system's Chromium (Debian's `chromium`
 * package; playwright's own browser downloads are not used). `.ci/run` installs it when missing. Locally, a machine
 * without Chromium skips browser tests with a message saying how to install it; in CI (CI set) that is a failure.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

export const CHROMIUM_MISSING =
  'No Chromium found (looked at $CHROMIUM_PATH and ' + CANDIDATES.join(', ') + '). ' +
  'Install it with `apt-get update && apt-get install -y chromium` (Debian/Ubuntu; .ci/run does this in CI) ' +
  'or point CHROMIUM_PATH at a Chrome/Chromium binary.';

/** The Chromium executable to use, or undefined. */
export function findChromium(): string | undefined {
  const explicit = process.env.CHROMIUM_PATH;
  if (explicit) {
    if (!existsSync(explicit)) throw new Error(`CHROMIUM_PATH=${explicit} does not exist`);
    return explicit;
  }
  return CANDIDATES.find((candidate) => existsSync(candidate));
}

/** Flags for a quiet, hermetic headless browser: no GPU, no sandbox (root in CI), nothing phoning home. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface HeadlessBrowser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** A browser with a fresh profile directory (removed on close). */
export async function launchChromium(executablePath: string): Promise<HeadlessBrowser> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'meterloop-chromium-'));
  // playwright passes the profile as --user-data-dir; a persistent context is how it takes one.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1200, height: 900 },
    timeout: 60_000,
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
