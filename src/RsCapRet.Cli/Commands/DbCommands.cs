using System.CommandLine;
using Npgsql;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>`rscapret db migrate|status`: the catalogue database (connection from RSCAPRET_DB or --db).</summary>
public static class DbCommands
{
    public static readonly Option<string?> DbOption = new("--db")
    {
        Description = "Npgsql connection string (default: $RSCAPRET_DB, else .data/db.env written by scripts/db.sh)",
    };

    public static Command Build()
    {
        var db = new Command("db", "Manage the catalogue database");

        var migrate = new Command("migrate", "Apply pending SQL migrations from migrations/") { DbOption };
        CommandAction.Set(migrate, async (parse, output, ct) =>
        {
            var applied = await MigrationRunner.ApplyAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbOption)), ct: ct,
                log: line => output.WriteLine(line));
            await output.WriteLineAsync(applied.Count == 0
                ? "database is up to date"
                : $"applied migrations: {string.Join(", ", applied.Select(v => v.ToString("D4")))}");
            return 0;
        });

        var status = new Command("status", "Show applied migrations, extensions and catalogue counts") { DbOption };
        CommandAction.Set(status, async (parse, output, ct) =>
        {
            var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbOption));
            await using var conn = new NpgsqlConnection(cs);
            await conn.OpenAsync(ct);
            await output.WriteLineAsync($"server: {conn.Host}:{conn.Port} database {conn.Database} (PostgreSQL {conn.PostgreSqlVersion})");
            await using (var cmd = new NpgsqlCommand("SELECT extname || ' ' || extversion FROM pg_extension WHERE extname IN ('postgis','vector') ORDER BY 1", conn))
            await using (var r = await cmd.ExecuteReaderAsync(ct))
                while (await r.ReadAsync(ct)) await output.WriteLineAsync($"extension: {r.GetString(0)}");
            var pending = MigrationRunner.Embedded().Select(m => m.Version).ToHashSet();
            await using (var cmd = new NpgsqlCommand("SELECT to_regclass('schema_migrations') IS NOT NULL", conn))
                if ((bool)(await cmd.ExecuteScalarAsync(ct))!)
                {
                    await using var list = new NpgsqlCommand("SELECT version, name, applied_at FROM schema_migrations ORDER BY version", conn);
                    await using var r = await list.ExecuteReaderAsync(ct);
                    while (await r.ReadAsync(ct))
                    {
                        pending.Remove(r.GetInt32(0));
                        await output.WriteLineAsync($"migration {r.GetInt32(0):D4}_{r.GetString(1)} applied {r.GetDateTime(2):u}");
                    }
                }
            await output.WriteLineAsync(pending.Count == 0 ? "no pending migrations" : $"pending migrations: {string.Join(", ", pending.Order().Select(v => v.ToString("D4")))}");
            await using (var cmd = new NpgsqlCommand("SELECT to_regclass('tiles') IS NOT NULL", conn))
                if ((bool)(await cmd.ExecuteScalarAsync(ct))!) await WriteCatalogueAsync(conn, output, ct);
            return 0;
        });

        db.Subcommands.Add(migrate);
        db.Subcommands.Add(status);
        return db;
    }

    /// <summary>
    /// Catalogue counts, and the sizes search depends on against the buffer cache: with the HNSW index larger than
    /// shared_buffers, index pages come from the OS cache or disk and latency swings (README, search benchmark).
    /// </summary>
    private static async Task WriteCatalogueAsync(NpgsqlConnection conn, TextWriter output, CancellationToken ct)
    {
        await using (var cmd = new NpgsqlCommand("""
            SELECT (SELECT count(*) FROM models),
                   (SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), 'none') FROM (SELECT status, count(*) n FROM scenes GROUP BY status) s),
                   (SELECT count(*) FROM tiles)
            """, conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            await r.ReadAsync(ct);
            await output.WriteLineAsync(FormattableString.Invariant($"catalogue: {r.GetInt64(0)} models, scenes {r.GetString(1)}, {r.GetInt64(2):N0} tiles"));
        }
        await using (var cmd = new NpgsqlCommand("""
            SELECT current_setting('shared_buffers'), current_setting('maintenance_work_mem'),
                   current_setting('max_parallel_maintenance_workers'), current_setting('shared_preload_libraries') LIKE '%pg_prewarm%'
            """, conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            await r.ReadAsync(ct);
            await output.WriteLineAsync($"settings: shared_buffers {r.GetString(0)}, maintenance_work_mem {r.GetString(1)}, " +
                $"max_parallel_maintenance_workers {r.GetString(2)}, autoprewarm {(r.GetBoolean(3) ? "on (cached pages reloaded after a restart)" : "off")}");
        }
        // tiles and its indexes are partitioned by model (migrations/0016): sizes are the sums over the partitions
        // (a catalogue not yet migrated to 0016 has the plain relations).
        await using (var cmd = new NpgsqlCommand("""
            SELECT r.name, (SELECT coalesce(sum(pg_relation_size(p.relid)), pg_relation_size(r.name::regclass))::bigint FROM pg_partition_tree(r.name::regclass) p),
                   pg_size_bytes(current_setting('shared_buffers'))
              FROM unnest(ARRAY['tiles', 'tiles_embedding_hnsw', 'tiles_footprint_gist']) r(name)
             WHERE to_regclass(r.name) IS NOT NULL
             ORDER BY r.name
            """, conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
            {
                double size = r.GetInt64(1), buffers = r.GetInt64(2);
                var kind = r.GetString(0) == "tiles" ? "table" : "index";
                await output.WriteLineAsync(FormattableString.Invariant(
                    $"{kind} {r.GetString(0)}: {size / 1048576:F1} MiB = {100 * size / buffers:F1} % of shared_buffers ({buffers / 1048576:F0} MiB){(size > buffers ? "; larger than the buffer cache: raise shared_buffers (README, Search benchmark)" : "")}"));
            }
        foreach (var p in await TileVectorIndex.PartitionsAsync(conn, ct))
            await output.WriteLineAsync(FormattableString.Invariant(
                $"model {p.ModelId}: partition {p.Table} {p.TableBytes / 1048576.0:F1} MiB ({p.RowsText}), graph ") +
                (p.Index is null ? "not built (searches of this model are exact until `rscapret db migrate` builds it)"
                    : FormattableString.Invariant($"{p.Index} {p.IndexBytes / 1048576.0:F1} MiB{(p.Valid ? "" : ", INVALID")}")));
    }
}
