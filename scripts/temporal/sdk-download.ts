/** Step 3 of the ladder: let the SDK download the server itself, when its CDN answers. */
import * as fs from 'node:fs/promises';
import * as https from 'node:https';
import * as path from 'node:path';
// Type-only: @temporalio/testing is a dev dependency, loaded at run time only on the SDK-download path.
import type { EphemeralServerExecutable } from '@temporalio/testing';

export const SDK_CDN = 'https://temporal.download/';
const CDN_PROBE_TIMEOUT_MS = 3000;

let cdnProbe: Promise<boolean> | undefined;

/** Whether the SDK's download CDN answers at all (any HTTP status counts); probed once per process. */
export function cdnReachable(): Promise<boolean> {
  cdnProbe ??= new Promise<boolean>((resolve) => {
    // An overall timer, because the socket timeout alone does not cover a hanging DNS lookup.
    const timer = setTimeout(() => {
      req.destroy();
      resolve(false);
    }, CDN_PROBE_TIMEOUT_MS);
    const req = https.request(SDK_CDN, { method: 'HEAD' }, (res) => {
      res.resume();
      clearTimeout(timer);
      resolve(true);
    });
    req.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
    req.end();
  });
  return cdnProbe;
}

/** The SDK's download, kept in our cache too (its default is the OS temp dir), or undefined if not allowed or unreachable. */
export async function sdkDownloadExecutable(allowed: boolean, cacheDir: string): Promise<EphemeralServerExecutable | undefined> {
  if (!allowed || !(await cdnReachable())) return undefined;
  const downloadDir = path.join(cacheDir, 'sdk-download');
  await fs.mkdir(downloadDir, { recursive: true }); // the SDK does not create it
  return { type: 'cached-download', downloadDir };
}
