import { useSearchParams } from 'wouter';
import { filtersOf, withChanges } from './url-filters';

/** A list's filters and page, kept in the address so a filtered page can be shared and reloaded. */
export function useUrlFilters<K extends string>(names: readonly K[], cursorKey = 'cursor') {
  const [params, setParams] = useSearchParams();
  return {
    filters: filtersOf(params, names),
    cursor: params.get(cursorKey) ?? '',
    set: (changes: Partial<Record<K, string>>) => setParams((prev) => withChanges(prev, changes as Record<string, string>, [cursorKey])),
    page: (cursor: string) => setParams((prev) => withChanges(prev, { [cursorKey]: cursor }, [cursorKey])),
  };
}
