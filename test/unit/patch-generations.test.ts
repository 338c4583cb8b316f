/**
 * A released patch generation is never edited (workflows/subscription/patch-ids.ts): histories recorded under it
 * replay with exactly its list. These copies are the released lists; a change to one fails here on purpose. A new
 * generation goes at the end of the list, and is added here once released.
 */
import { PATCH_GENERATIONS } from '../../workflows/subscription/patch-ids';

const RELEASED: readonly { id: string; patches: readonly string[] }[] = [
  {
    id: 'subscription-patches-1',
    patches: [
      'needs-attention-on-deterministic-failure',
      'serialized-lifecycle-updates',
      'main-loop-acts-after-running-handlers',
      'plan-change-keyed-by-request',
      'progressive-billing-thresholds',
      'cheaper-period-step',
      'period-opens-in-one-local-activity',
      'periods-share-a-run',
    ],
  },
];

test('the released generations come first, in release order, each with its id and its list unchanged', () => {
  expect(PATCH_GENERATIONS.slice(0, RELEASED.length)).toEqual(RELEASED);
});

test('every patch is released by one generation only, and every generation has its own id', () => {
  const patches = PATCH_GENERATIONS.flatMap((generation) => generation.patches);
  expect(new Set(patches).size).toBe(patches.length);
  const ids = PATCH_GENERATIONS.map((generation) => generation.id);
  expect(new Set(ids).size).toBe(ids.length);
});
