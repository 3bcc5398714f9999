using System.Diagnostics;
using System.Text.RegularExpressions;
using Npgsql;

namespace RsCapRet.Storage;

/// <summary>
/// The per-model graphs of the halfvec HNSW index (migrations/0016): tiles is partitioned by model and
/// tiles_embedding_hnsw is a partitioned index. A partition made by registering a model gets its (empty) graph as it
/// is attached; one that holds rows without a graph (the 0016 upgrade, or a benchmark that dropped the index for a
/// bulk load) is built here with CREATE INDEX CONCURRENTLY, so the catalogue stays readable and writable meanwhile,
/// with pg_stat_progress_create_index reported every few seconds, and then attached to the parent index.
/// </summary>
public static partial class TileVectorIndex
{
    public const string Name = "tiles_embedding_hnsw";

    /// <summary>
    /// A partition of tiles and whether its graph is attached to <see cref="Name"/>, with their sizes on disk. Rows is
    /// the planner's estimate (pg_class.reltuples), -1 before the partition was first analysed.
    /// </summary>
    public sealed record Partition(string Table, int ModelId, long Rows, string? Index, bool Valid, long TableBytes, long IndexBytes)
    {
        public string RowsText => Rows < 0 ? "not yet analysed" : FormattableString.Invariant($"about {Rows:N0} tiles");
    }

    [GeneratedRegex(@"^CREATE INDEX (\S+) ON ONLY (\S+) USING ")]
    private static partial Regex ParentDefinition();

    /// <summary>The partitions of tiles with their graph (null when none is attached) and an estimate of their rows.</summary>
    public static async Task<IReadOnlyList<Partition>> PartitionsAsync(NpgsqlConnection conn, CancellationToken ct = default)
    {
        await using var cmd = new NpgsqlCommand("""
            SELECT p.relid::regclass::text, substring(pg_get_expr(c.relpartbound, c.oid) FROM '\((\d+)\)')::integer,
                   c.reltuples::bigint, x.indexrelid::regclass::text, coalesce(x.indisvalid, false),
                   pg_relation_size(p.relid), coalesce(pg_relation_size(x.indexrelid), 0)
              FROM pg_partition_tree('tiles') p
              JOIN pg_class c ON c.oid = p.relid
              LEFT JOIN (SELECT i.indrelid, i.indexrelid, i.indisvalid
                           FROM pg_inherits h JOIN pg_index i ON i.indexrelid = h.inhrelid
                          WHERE h.inhparent = to_regclass('tiles_embedding_hnsw')) x ON x.indrelid = p.relid
             WHERE p.isleaf
             ORDER BY 2
            """, conn);
        var list = new List<Partition>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            list.Add(new Partition(r.GetString(0), r.GetInt32(1), r.GetInt64(2), r.IsDBNull(3) ? null : r.GetString(3), r.GetBoolean(4),
                r.GetInt64(5), r.GetInt64(6)));
        return list;
    }

    /// <summary>
    /// Builds and attaches the graph of every partition that has none (a no-op when all have one); returns the
    /// partitions built. An index of a graph's name that is not attached (a cancelled concurrent build leaves one
    /// invalid) is dropped and built again. Progress is
    /// read on a second connection of <paramref name="connectionString"/>; the build runs on <paramref name="conn"/>,
    /// which must not be in a transaction.
    /// </summary>
    public static async Task<IReadOnlyList<string>> BuildMissingAsync(string connectionString, NpgsqlConnection conn, Action<string>? log = null,
        CancellationToken ct = default)
    {
        // Nothing to do without the partitioned index of 0016 (a catalogue migrated only part of the way, or a benchmark
        // that dropped it for a bulk load and builds it later).
        if (!await ScalarAsync<bool>(conn, "SELECT coalesce((SELECT relkind = 'I' FROM pg_class WHERE oid = to_regclass('tiles_embedding_hnsw')), false)", ct))
            return [];
        var missing = (await PartitionsAsync(conn, ct)).Where(p => p.Index is null).ToList();
        if (missing.Count == 0) return [];
        var definition = await ScalarAsync<string>(conn, "SELECT pg_get_indexdef('tiles_embedding_hnsw'::regclass)", ct);
        var parent = ParentDefinition().Match(definition);
        if (!parent.Success) throw new InvalidOperationException($"{Name} is not an index ON ONLY tiles as migrations/0016 creates it: {definition}");
        var built = new List<string>();
        foreach (var p in missing)
        {
            var index = p.Table + "_embedding_hnsw";
            if (await ScalarAsync<bool>(conn, $"SELECT to_regclass('{index}') IS NOT NULL", ct))
            {
                log?.Invoke($"{index}: exists but is not attached to {Name} (an interrupted concurrent build leaves one invalid); dropping it");
                await ExecAsync(conn, $"DROP INDEX CONCURRENTLY {index}", ct);
            }
            var create = "CREATE INDEX CONCURRENTLY " + index + " ON " + p.Table + definition[(parent.Index + parent.Length - " USING ".Length)..];
            log?.Invoke($"{index}: building the HNSW graph of model {p.ModelId} ({p.RowsText}) concurrently");
            var sw = Stopwatch.StartNew();
            var pid = await ScalarAsync<int>(conn, "SELECT pg_backend_pid()", ct);
            using var progressStop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var progress = log is null ? Task.CompletedTask : ReportProgressAsync(connectionString, pid, index, log, progressStop.Token);
            try { await ExecAsync(conn, create, ct); }
            finally
            {
                await progressStop.CancelAsync();
                try { await progress; } catch (OperationCanceledException) { }
            }
            await ExecAsync(conn, $"ALTER INDEX {Name} ATTACH PARTITION {index}", ct);
            log?.Invoke(FormattableString.Invariant($"{index}: built and attached in {sw.Elapsed.TotalSeconds:F1} s"));
            built.Add(p.Table);
        }
        return built;
    }

    private static async Task ReportProgressAsync(string connectionString, int pid, string index, Action<string> log, CancellationToken ct)
    {
        await using var watcher = new NpgsqlConnection(connectionString);
        await watcher.OpenAsync(ct);
        while (true)
        {
            await Task.Delay(TimeSpan.FromSeconds(5), ct);
            await using var cmd = new NpgsqlCommand("""
                SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total
                  FROM pg_stat_progress_create_index WHERE pid = $1
                """, watcher);
            cmd.Parameters.Add(new() { Value = pid });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            if (!await r.ReadAsync(ct)) continue;
            var (tuples, tuplesTotal, blocks, blocksTotal) = (r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4));
            var of = System.Globalization.CultureInfo.InvariantCulture;
            log($"{index}: {r.GetString(0)}" +
                (tuplesTotal > 0 ? string.Format(of, ", {0:N0} of {1:N0} tuples", tuples, tuplesTotal) : tuples > 0 ? string.Format(of, ", {0:N0} tuples", tuples) : "") +
                (blocksTotal > 0 ? string.Format(of, ", {0:N0} of {1:N0} blocks", blocks, blocksTotal) : ""));
        }
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync(ct))!;
    }

    private static async Task ExecAsync(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        cmd.CommandTimeout = 0; // a graph of millions of tiles takes many minutes
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
