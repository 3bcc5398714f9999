using Npgsql;

namespace RsCapRet.Storage;

/// <summary>A migration recorded in schema_migrations.</summary>
public sealed record AppliedMigration(int Version, string Name, DateTime AppliedAt);

/// <summary>The server settings search latency depends on (docs/architecture.md, search at scale).</summary>
public sealed record CatalogueSettings(string SharedBuffers, string MaintenanceWorkMem, string MaxParallelMaintenanceWorkers, bool Autoprewarm);

/// <summary>A relation search reads (tiles or one of its indexes), its size summed over the partitions, against shared_buffers.</summary>
public sealed record RelationSize(string Name, long Bytes, long SharedBufferBytes)
{
    public bool IsTable => Name == "tiles";
}

/// <summary>Counts of the catalogue and the sizes of what search reads; <see cref="Scenes"/> is "done 3, failed 1" (or "none").</summary>
public sealed record CatalogueStatus(long Models, string Scenes, long Tiles, CatalogueSettings Settings, IReadOnlyList<RelationSize> Relations,
    IReadOnlyList<TileVectorIndex.Partition> Partitions);

/// <summary>
/// What `db status` shows: the server, the extensions, the migrations applied and pending, and — once the schema
/// exists — the catalogue's counts and the sizes search depends on against the buffer cache (with the HNSW index larger
/// than shared_buffers, index pages come from the OS cache or disk and latency swings).
/// </summary>
public sealed record DatabaseStatus(string Host, int Port, string Database, string ServerVersion, IReadOnlyList<string> Extensions,
    IReadOnlyList<AppliedMigration> Applied, IReadOnlyList<int> Pending, CatalogueStatus? Catalogue)
{
    /// <summary>Reads the status; works on an empty database (no migrations yet: nothing applied, no catalogue).</summary>
    public static async Task<DatabaseStatus> ReadAsync(string connectionString, CancellationToken ct = default)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync(ct);
        var extensions = new List<string>();
        await using (var cmd = new NpgsqlCommand("SELECT extname || ' ' || extversion FROM pg_extension WHERE extname IN ('postgis','vector') ORDER BY 1", conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct)) extensions.Add(r.GetString(0));
        var applied = new List<AppliedMigration>();
        if (await ExistsAsync(conn, "schema_migrations", ct))
        {
            await using var list = new NpgsqlCommand("SELECT version, name, applied_at FROM schema_migrations ORDER BY version", conn);
            await using var r = await list.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) applied.Add(new AppliedMigration(r.GetInt32(0), r.GetString(1), r.GetDateTime(2)));
        }
        var pending = MigrationRunner.Embedded().Select(m => m.Version).Except(applied.Select(a => a.Version)).Order().ToList();
        var catalogue = await ExistsAsync(conn, "tiles", ct) ? await ReadCatalogueAsync(conn, ct) : null;
        return new DatabaseStatus(conn.Host ?? "", conn.Port, conn.Database ?? "", conn.PostgreSqlVersion.ToString(), extensions, applied, pending, catalogue);
    }

    private static async Task<bool> ExistsAsync(NpgsqlConnection conn, string relation, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", conn);
        cmd.Parameters.Add(new() { Value = relation });
        return (bool)(await cmd.ExecuteScalarAsync(ct))!;
    }

    private static async Task<CatalogueStatus> ReadCatalogueAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        long models, tiles;
        string scenes;
        await using (var cmd = new NpgsqlCommand("""
            SELECT (SELECT count(*) FROM models),
                   (SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), 'none') FROM (SELECT status, count(*) n FROM scenes GROUP BY status) s),
                   (SELECT count(*) FROM tiles)
            """, conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            await r.ReadAsync(ct);
            (models, scenes, tiles) = (r.GetInt64(0), r.GetString(1), r.GetInt64(2));
        }
        CatalogueSettings settings;
        await using (var cmd = new NpgsqlCommand("""
            SELECT current_setting('shared_buffers'), current_setting('maintenance_work_mem'),
                   current_setting('max_parallel_maintenance_workers'), current_setting('shared_preload_libraries') LIKE '%pg_prewarm%'
            """, conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            await r.ReadAsync(ct);
            settings = new CatalogueSettings(r.GetString(0), r.GetString(1), r.GetString(2), r.GetBoolean(3));
        }
        // tiles and its indexes are partitioned by model (migrations/0016): sizes are the sums over the partitions
        // (a catalogue not yet migrated to 0016 has the plain relations).
        var relations = new List<RelationSize>();
        await using (var cmd = new NpgsqlCommand("""
            SELECT r.name, (SELECT coalesce(sum(pg_relation_size(p.relid)), pg_relation_size(r.name::regclass))::bigint FROM pg_partition_tree(r.name::regclass) p),
                   pg_size_bytes(current_setting('shared_buffers'))
              FROM unnest(ARRAY['tiles', 'tiles_embedding_hnsw', 'tiles_footprint_gist']) r(name)
             WHERE to_regclass(r.name) IS NOT NULL
             ORDER BY r.name
            """, conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct)) relations.Add(new RelationSize(r.GetString(0), r.GetInt64(1), r.GetInt64(2)));
        return new CatalogueStatus(models, scenes, tiles, settings, relations, await TileVectorIndex.PartitionsAsync(conn, ct));
    }
}
