using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace RsCapRet.Storage;

/// <summary>One numbered SQL file from migrations/ (NNNN_name.sql).</summary>
public sealed record Migration(int Version, string Name, string Sql)
{
    public string Checksum => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Sql)));
}

/// <summary>
/// One file of migrations/functions/ (NN_name.sql): the current definition of a family of SQL functions, applied
/// again whenever its text changes (see migrations/functions/README.md).
/// </summary>
public sealed record RepeatableScript(string Name, string Sql)
{
    public string Checksum => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Sql)));
}

/// <summary>What one run of the runner applied: numbered migrations by version, repeatable scripts by file name.</summary>
public sealed record MigrationReport(IReadOnlyList<int> Migrations, IReadOnlyList<string> RepeatableScripts);

/// <summary>
/// Applies migrations/ in version order, each in its own transaction, and records them in
/// schema_migrations; then the repeatable scripts of migrations/functions/ whose text differs from the one recorded in
/// schema_repeatable_scripts, in file-name order and in one transaction; then builds any per-model vector graph that
/// is missing (<see cref="TileVectorIndex"/>, concurrently, outside a transaction). A session advisory lock serialises
/// concurrent runners (several workers starting at once); an applied migration whose file has since changed is an
/// error rather than silently skipped.
/// </summary>
public static partial class MigrationRunner
{
    private const long AdvisoryLockKey = 0x52734361705265; // "RsCapRe"

    [GeneratedRegex(@"^(\d{4})_([a-z0-9_]+)\.sql$")]
    private static partial Regex FileNamePattern();

    [GeneratedRegex(@"^\d{2}_[a-z0-9_]+\.sql$")]
    private static partial Regex RepeatableFileNamePattern();

    private const string RepeatablePrefix = "migrations/functions/";

    /// <summary>The migrations embedded in this assembly (copied from the repository's migrations/ folder).</summary>
    public static IReadOnlyList<Migration> Embedded()
    {
        var asm = typeof(MigrationRunner).Assembly;
        var list = new List<Migration>();
        foreach (var resource in asm.GetManifestResourceNames().Where(n => n.StartsWith("migrations/", StringComparison.Ordinal)
                     && !n.StartsWith(RepeatablePrefix, StringComparison.Ordinal)))
        {
            var file = resource["migrations/".Length..];
            var m = FileNamePattern().Match(file);
            if (!m.Success) throw new InvalidOperationException($"Migration file name '{file}' is not of the form NNNN_name.sql.");
            using var stream = asm.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream, Encoding.UTF8);
            list.Add(new Migration(int.Parse(m.Groups[1].Value), m.Groups[2].Value, reader.ReadToEnd()));
        }
        var duplicate = list.GroupBy(x => x.Version).FirstOrDefault(g => g.Count() > 1);
        if (duplicate != null) throw new InvalidOperationException($"Two migrations share version {duplicate.Key:D4}.");
        return list.OrderBy(x => x.Version).ToList();
    }

    /// <summary>The repeatable scripts embedded in this assembly (migrations/functions/), in file-name order.</summary>
    public static IReadOnlyList<RepeatableScript> EmbeddedRepeatableScripts()
    {
        var asm = typeof(MigrationRunner).Assembly;
        var list = new List<RepeatableScript>();
        foreach (var resource in asm.GetManifestResourceNames().Where(n => n.StartsWith(RepeatablePrefix, StringComparison.Ordinal)))
        {
            var file = resource[RepeatablePrefix.Length..];
            if (!RepeatableFileNamePattern().IsMatch(file))
                throw new InvalidOperationException($"Repeatable script name 'functions/{file}' is not of the form NN_name.sql.");
            using var stream = asm.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream, Encoding.UTF8);
            list.Add(new RepeatableScript(file, reader.ReadToEnd()));
        }
        return list.OrderBy(x => x.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Applies pending migrations and changed repeatable scripts; returns the versions of the migrations applied by
    /// this call (empty when up to date). See <see cref="MigrateAsync"/>.
    /// </summary>
    public static async Task<IReadOnlyList<int>> ApplyAsync(string connectionString, IReadOnlyList<Migration>? migrations = null,
        Action<string>? log = null, CancellationToken ct = default) =>
        (await MigrateAsync(connectionString, migrations, null, log, ct)).Migrations;

    /// <summary>
    /// Applies pending migrations, then every repeatable script whose text is not the one recorded as applied; reports
    /// both. Both lists default to the embedded ones, except that given <paramref name="migrations"/> alone (a test that
    /// builds an older catalogue) no repeatable script is applied: they define the functions over the schema the whole
    /// chain of migrations makes. <paramref name="log"/> hears about long steps (building a model's vector graph).
    /// </summary>
    public static async Task<MigrationReport> MigrateAsync(string connectionString, IReadOnlyList<Migration>? migrations = null,
        IReadOnlyList<RepeatableScript>? repeatableScripts = null, Action<string>? log = null, CancellationToken ct = default)
    {
        repeatableScripts ??= migrations == null ? EmbeddedRepeatableScripts() : [];
        migrations ??= Embedded();
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync(ct);
        await LockAsync(conn, log, ct);
        try
        {
            await Exec(conn, """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer     PRIMARY KEY,
                    name       text        NOT NULL,
                    checksum   text        NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """, ct);
            var applied = new Dictionary<int, string>();
            await using (var cmd = new NpgsqlCommand("SELECT version, checksum FROM schema_migrations", conn))
            await using (var r = await cmd.ExecuteReaderAsync(ct))
                while (await r.ReadAsync(ct)) applied[r.GetInt32(0)] = r.GetString(1);

            var done = new List<int>();
            foreach (var m in migrations)
            {
                if (applied.TryGetValue(m.Version, out var checksum))
                {
                    if (checksum != m.Checksum)
                        throw new InvalidOperationException(
                            $"Migration {m.Version:D4}_{m.Name}.sql was changed after it was applied (checksum differs); " +
                            "add a new migration instead of editing an applied one.");
                    continue;
                }
                await using var tx = await conn.BeginTransactionAsync(ct);
                try
                {
                    await using (var cmd = new NpgsqlCommand(m.Sql, conn, tx)) await cmd.ExecuteNonQueryAsync(ct);
                    await using (var cmd = new NpgsqlCommand(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (@v, @n, @c)", conn, tx))
                    {
                        cmd.Parameters.AddWithValue("v", m.Version);
                        cmd.Parameters.AddWithValue("n", m.Name);
                        cmd.Parameters.AddWithValue("c", m.Checksum);
                        await cmd.ExecuteNonQueryAsync(ct);
                    }
                    await tx.CommitAsync(ct);
                }
                catch (PostgresException e)
                {
                    throw new InvalidOperationException($"Migration {m.Version:D4}_{m.Name}.sql failed: {e.MessageText}", e);
                }
                done.Add(m.Version);
            }
            var scripts = await ApplyRepeatableScriptsAsync(conn, repeatableScripts, ct);
            await TileVectorIndex.BuildMissingAsync(connectionString, conn, log, ct);
            return new MigrationReport(done, scripts);
        }
        finally
        {
            await Exec(conn, "SELECT pg_advisory_unlock(@k)", CancellationToken.None, ("k", AdvisoryLockKey));
        }
    }

    // All changed scripts in one transaction, so a catalogue never holds half of a change that spans files; in
    // file-name order, so a script may call the functions of the ones before it (SQL-language bodies are checked as
    // they are created).
    private static async Task<IReadOnlyList<string>> ApplyRepeatableScriptsAsync(NpgsqlConnection conn,
        IReadOnlyList<RepeatableScript> scripts, CancellationToken ct)
    {
        var duplicate = scripts.GroupBy(x => x.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate != null) throw new InvalidOperationException($"Two repeatable scripts are named functions/{duplicate.Key}.");
        if (scripts.Count == 0) return [];   // an older catalogue built on purpose (tests) stays as it was then
        await Exec(conn, """
            CREATE TABLE IF NOT EXISTS schema_repeatable_scripts (
                name       text        PRIMARY KEY,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """, ct);
        var applied = new Dictionary<string, string>(StringComparer.Ordinal);
        await using (var cmd = new NpgsqlCommand("SELECT name, checksum FROM schema_repeatable_scripts", conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct)) applied[r.GetString(0)] = r.GetString(1);

        var changed = scripts.Where(s => !applied.TryGetValue(s.Name, out var checksum) || checksum != s.Checksum)
            .OrderBy(s => s.Name, StringComparer.Ordinal).ToList();
        if (changed.Count == 0) return [];
        await using var tx = await conn.BeginTransactionAsync(ct);
        foreach (var script in changed)
        {
            try
            {
                await using (var cmd = new NpgsqlCommand(script.Sql, conn, tx)) await cmd.ExecuteNonQueryAsync(ct);
            }
            catch (PostgresException e)
            {
                throw new InvalidOperationException($"Repeatable script functions/{script.Name} failed: {e.MessageText}", e);
            }
            await using var record = new NpgsqlCommand("""
                INSERT INTO schema_repeatable_scripts (name, checksum) VALUES (@n, @c)
                ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()
                """, conn, tx);
            record.Parameters.AddWithValue("n", script.Name);
            record.Parameters.AddWithValue("c", script.Checksum);
            await record.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        return changed.Select(s => s.Name).ToList();
    }

    // Polled rather than waited for: a runner blocked in pg_advisory_lock() holds a snapshot, and the concurrent
    // index build of the runner holding the lock waits for every older snapshot (a deadlock).
    private static async Task LockAsync(NpgsqlConnection conn, Action<string>? log, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            await using (var cmd = new NpgsqlCommand("SELECT pg_try_advisory_lock(@k)", conn))
            {
                cmd.Parameters.AddWithValue("k", AdvisoryLockKey);
                if ((bool)(await cmd.ExecuteScalarAsync(ct))!) return;
            }
            if (attempt == 25) log?.Invoke("waiting for another process that is migrating the catalogue (or building a model's vector graph)");
            await Task.Delay(200, ct);
        }
    }

    private static async Task Exec(NpgsqlConnection conn, string sql, CancellationToken ct, params (string, object)[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v);
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
