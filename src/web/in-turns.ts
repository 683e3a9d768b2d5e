// Reading many things from a registry a few at a time, within a time budget.

/**
 * `work` on every item, at most `turns` at once, answers in the items' order; items not started within
 * `budgetMs` are left undone (undefined).
 */
export async function mapInTurns<T, R>(items: readonly T[], turns: number, budgetMs: number, work: (item: T) => Promise<R>): Promise<(R | undefined)[]> {
  const results: (R | undefined)[] = items.map(() => undefined);
  const deadline = Date.now() + budgetMs;
  let next = 0;
  const worker = async () => {
    while (next < items.length && Date.now() < deadline) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(turns, items.length) }, worker));
  return results;
}
