-- A complete version is searchable ('done', or 'empty' without tiles) exactly while a current path shows it;
-- otherwise 'removed' (only removed paths show it) or 'superseded' (no path shows it). Called after every change of
-- scene_paths, in the same transaction. The versions are locked first, in a statement of their own, so that two
-- transactions changing paths of one version take turns and the second decides on what the first committed.
-- History: migration 0018 (scene versions and the archive paths that show them).
CREATE OR REPLACE FUNCTION rscapret_reconcile_scenes(ids bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM scenes WHERE id = ANY(ids) ORDER BY id FOR UPDATE;
    UPDATE scenes s
       SET status = v.status,
           retired_at = CASE WHEN v.status IN ('done', 'empty') THEN NULL ELSE COALESCE(s.retired_at, now()) END,
           updated_at = now()
      FROM (SELECT s2.id,
                   CASE WHEN EXISTS (SELECT 1 FROM scene_paths p WHERE p.scene_id = s2.id AND p.status = 'current')
                        THEN CASE WHEN s2.tile_count > 0 THEN 'done' ELSE 'empty' END
                        WHEN EXISTS (SELECT 1 FROM scene_paths p WHERE p.scene_id = s2.id) THEN 'removed'
                        ELSE 'superseded' END AS status
              FROM scenes s2
             WHERE s2.id = ANY(ids) AND s2.status IN ('done', 'empty', 'superseded', 'removed')) v
     WHERE s.id = v.id AND s.status IS DISTINCT FROM v.status;
END
$$;
