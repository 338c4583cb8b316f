/**
 * A released patch generation is never edited (workflows/subscription/patch-ids.ts): histories recorded under it
 * replay with exactly its list. These copies are the released lists; a change to one fails here on purpose. A new
 * patch goes into a new generation, added here as released.
 */
import { PATCH_GENERATIONS } from '../../workflows/subscription/patch-ids';

const RELEASED: Record<string, readonly string[]> = {
  'subscription-patches-1': [
    'needs-attention-on-deterministic-failure',
    'serialized-lifecycle-updates',
    'main-loop-acts-after-running-handlers',
    'plan-change-keyed-by-request',
    'progressive-billing-thresholds',
    'cheaper-period-step',
    'period-opens-in-one-local-activity',
    'periods-share-a-run',
  ],
};

test('every released generation keeps its id and its list of patches', () => {
  for (const [id, patches] of Object.entries(RELEASED)) {
    expect(PATCH_GENERATIONS.find((generation) => generation.id === id)?.patches).toEqual(patches);
  }
});

test('generations are newest first, and each includes every patch of the one before it', () => {
  const ids = PATCH_GENERATIONS.map((generation) => generation.id);
  expect(new Set(ids).size).toBe(ids.length);
  for (let index = 1; index < PATCH_GENERATIONS.length; index += 1) {
    const newer = new Set(PATCH_GENERATIONS[index - 1].patches);
    expect(PATCH_GENERATIONS[index].patches.filter((patch) => !newer.has(patch))).toEqual([]);
    expect(newer.size).toBeGreaterThan(PATCH_GENERATIONS[index].patches.length);
  }
});
