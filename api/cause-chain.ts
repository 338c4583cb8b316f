/** The error and its causes (ServiceError and knex wrap the original), outermost first. */
export function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current !== undefined && current !== null && chain.length < 8; current = (current as { cause?: unknown }).cause) {
    chain.push(current);
    const inner = (current as { errors?: unknown }).errors; // AggregateError: net's happy-eyeballs connect error
    if (Array.isArray(inner)) chain.push(...inner);
  }
  return chain;
}
