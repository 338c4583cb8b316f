/** Small file-system questions the resolver asks: does it exist, can it be run, where is a command on PATH. */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

export async function isExecutable(p: string): Promise<boolean> {
  try {
    const st = await fs.stat(p);
    if (!st.isFile()) return false;
    await fs.access(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Looks a command up on PATH, like `command -v`. */
export async function which(cmd: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && (await isExecutable(path.join(dir, cmd)))) return path.join(dir, cmd);
  }
  return undefined;
}
