/** The simulation's seeded generator (mulberry32): the same seed gives the same sequence. */
export { seededRandom } from '../../scripts/simulation/usage';

/**
 * The seed for a randomized test: from the environment variable `name` when set (to replay a run), else a fresh
 * one. The test prints it, so any failing run can be repeated with `<name>=<seed>`.
 */
export function seedFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): number {
  const given = env[name];
  if (given === undefined || given === '') return Math.floor(Math.random() * 2 ** 32);
  const seed = Number(given);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new Error(`${name} must be an integer from 0 to 2^32 - 1, got ${given}`);
  return seed;
}
