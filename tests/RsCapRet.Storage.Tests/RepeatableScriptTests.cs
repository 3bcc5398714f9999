using Npgsql;
using RsCapRet.Core;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

/// <summary>
/// The SQL functions live in migrations/functions/ (repeatable scripts, applied again when their text changes), no
/// longer in copies inside numbered migrations. Fixtures/functions-after-0024.txt is what the chain of migrations
/// 0001-0024 left (pg_get_functiondef and the comment of every function of the catalogue, captured before the scripts
/// existed): the scripts must define exactly those functions, on a fresh catalogue and on an old one alike.
/// </summary>
public class RepeatableScriptTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    /// <summary>The last migration that re-created a function; existing catalogues were built by 0001..this.</summary>
    private const int LastMigrationWithFunctions = 24;

    /// <summary>
    /// Functions a repeatable script has changed on purpose since the fixture was captured (none yet): the fixture
    /// holds what the migrations left, so those are expected to differ from it.
    /// </summary>
    private static readonly HashSet<string> ChangedSinceTheFixture = [];

    // Every function of the catalogue that no extension owns, in one text: its signature, its comment and
    // pg_get_functiondef (argument names, defaults, return type, language, volatility, settings and the body verbatim).
    private const string FunctionsSql = """
        SELECT p.oid::regprocedure::text AS signature,
               format(E'-- %s\n-- comment: %s\n%s', p.oid::regprocedure, coalesce(obj_description(p.oid, 'pg_proc'), '(none)'),
                      pg_get_functiondef(p.oid)) AS entry
          FROM pg_proc p
         WHERE p.pronamespace = 'public'::regnamespace
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
         ORDER BY p.oid::regprocedure::text COLLATE "C"
        """;

    private static string FixturePath => Path.Combine(RepositoryPaths.FindRoot(), "tests", "RsCapRet.Storage.Tests", "Fixtures", "functions-after-0024.txt");

    private static async Task<List<(string Signature, string Entry)>> FunctionsAsync(NpgsqlConnection conn, NpgsqlTransaction? tx = null)
    {
        var list = new List<(string, string)>();
        await using var cmd = new NpgsqlCommand(FunctionsSql, conn, tx);
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) list.Add((r.GetString(0), r.GetString(1)));
        return list;
    }

    private static async Task<List<(string Signature, string Entry)>> FunctionsAsync(string connectionString)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        return await FunctionsAsync(conn);
    }

    /// <summary>The functions against the fixture, one line per function that differs (the first differing line of it).</summary>
    private static void AssertSameAsFixture(List<(string Signature, string Entry)> functions, bool allowChanged)
    {
        var fixture = File.ReadAllText(FixturePath).TrimEnd('\n');
        var actual = string.Join("\n", functions.Select(f => f.Entry)).TrimEnd('\n');
        if (fixture == actual) return;
        var problems = new List<string>();
        foreach (var (signature, entry) in functions)
        {
            if (allowChanged && ChangedSinceTheFixture.Contains(signature)) continue;
            if (!fixture.Contains(entry.TrimEnd('\n'), StringComparison.Ordinal))
            {
                var header = $"-- {signature}\n";
                var at = fixture.IndexOf(header, StringComparison.Ordinal);
                if (at < 0) { problems.Add($"{signature}: not in the fixture"); continue; }
                var expected = fixture[at..].Split('\n');
                var got = entry.Split('\n');
                var i = 0;
                while (i < got.Length && i < expected.Length && got[i] == expected[i]) i++;
                problems.Add($"{signature}, line {i + 1}: expected «{(i < expected.Length ? expected[i] : "")}», got «{(i < got.Length ? got[i] : "")}»");
            }
        }
        var present = functions.Select(f => f.Signature).ToHashSet();
        var lines = fixture.Split('\n');
        for (var i = 0; i + 1 < lines.Length; i++)
            if (lines[i].StartsWith("-- ", StringComparison.Ordinal) && lines[i + 1].StartsWith("-- comment: ", StringComparison.Ordinal)
                && !present.Contains(lines[i][3..]) && !(allowChanged && ChangedSinceTheFixture.Contains(lines[i][3..])))
                problems.Add($"{lines[i][3..]}: missing");
        if (problems.Count == 0 && !(allowChanged && ChangedSinceTheFixture.Count > 0))
            problems.Add("every function matches, but not the text as a whole (order or separators)");
        Assert.True(problems.Count == 0, "function definitions differ from Fixtures/functions-after-0024.txt:\n" + string.Join("\n", problems));
    }

    private static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    [Fact]
    public void EveryFileOfMigrationsFunctionsIsEmbeddedInFileNameOrder()
    {
        var dir = Path.Combine(RepositoryPaths.FindRoot(), "migrations", "functions");
        var files = Directory.GetFiles(dir, "*.sql").Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToList();
        var embedded = MigrationRunner.EmbeddedRepeatableScripts();
        Assert.NotEmpty(files);
        Assert.Equal(files, embedded.Select(s => s.Name));
        Assert.All(embedded, s => Assert.Equal(File.ReadAllText(Path.Combine(dir, s.Name)), s.Sql));
        // The numbered migrations are the top folder's files only.
        Assert.Equal(Directory.GetFiles(Path.Combine(RepositoryPaths.FindRoot(), "migrations"), "*.sql").Length, MigrationRunner.Embedded().Count);
    }

    [Fact]
    public async Task TheOldChainOfMigrationsLeftTheFunctionsOfTheFixture()
    {
        await using var old = new TestDatabase { MigrateThrough = LastMigrationWithFunctions };
        await old.InitializeAsync();
        Assert.False(await ScalarAsync<bool>(old.ConnectionString, "SELECT to_regclass('schema_repeatable_scripts') IS NOT NULL"));
        AssertSameAsFixture(await FunctionsAsync(old.ConnectionString), allowChanged: false);
    }

    [Fact]
    public async Task AFreshCatalogueHasExactlyTheFunctionsOfTheOldChain()
    {
        AssertSameAsFixture(await FunctionsAsync(db.ConnectionString), allowChanged: true);
        var recorded = new List<(string, string)>();
        await using (var conn = new NpgsqlConnection(db.ConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT name, checksum FROM schema_repeatable_scripts ORDER BY name COLLATE \"C\"", conn);
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync()) recorded.Add((r.GetString(0), r.GetString(1)));
        }
        Assert.Equal(MigrationRunner.EmbeddedRepeatableScripts().Select(s => (s.Name, s.Checksum)), recorded);
    }

    [Fact]
    public async Task OpeningAnOldCatalogueAppliesEveryScriptOnceAndTheNextOpenNothing()
    {
        await using var old = new TestDatabase { MigrateThrough = LastMigrationWithFunctions };
        await old.InitializeAsync();
        var names = MigrationRunner.EmbeddedRepeatableScripts().Select(s => s.Name).ToList();

        var first = await MigrationRunner.MigrateAsync(old.ConnectionString);
        Assert.Equal(MigrationRunner.Embedded().Where(m => m.Version > LastMigrationWithFunctions).Select(m => m.Version), first.Migrations);
        Assert.Equal(names, first.RepeatableScripts);
        AssertSameAsFixture(await FunctionsAsync(old.ConnectionString), allowChanged: true);

        var second = await MigrationRunner.MigrateAsync(old.ConnectionString);
        Assert.Empty(second.Migrations);
        Assert.Empty(second.RepeatableScripts);
        // The way every command opens the catalogue: nothing is applied again.
        var appliedAt = await ScalarAsync<DateTime>(old.ConnectionString, "SELECT max(applied_at) FROM schema_repeatable_scripts");
        await using (var opened = await RsCapRetDatabase.OpenAsync(old.ConnectionString)) { }
        Assert.Equal(appliedAt, await ScalarAsync<DateTime>(old.ConnectionString, "SELECT max(applied_at) FROM schema_repeatable_scripts"));
        Assert.Equal((long)names.Count, await ScalarAsync<long>(old.ConnectionString, "SELECT count(*) FROM schema_repeatable_scripts"));
    }

    [Fact]
    public async Task AChangedScriptIsAppliedAgainAloneAndRecorded()
    {
        var scripts = MigrationRunner.EmbeddedRepeatableScripts();
        var target = scripts[^1];
        // A comment outside any function body: the text (and its checksum) changes, the definitions do not.
        var edited = scripts.Select(s => s == target ? s with { Sql = s.Sql + "\n-- edited\n" } : s).ToList();

        var report = await MigrationRunner.MigrateAsync(db.ConnectionString, repeatableScripts: edited);
        Assert.Empty(report.Migrations);
        Assert.Equal([target.Name], report.RepeatableScripts);
        Assert.Equal(edited[^1].Checksum, await ScalarAsync<string>(db.ConnectionString,
            $"SELECT checksum FROM schema_repeatable_scripts WHERE name = '{target.Name}'"));
        Assert.Empty((await MigrationRunner.MigrateAsync(db.ConnectionString, repeatableScripts: edited)).RepeatableScripts);

        // Back to the embedded text: applied again, then nothing.
        Assert.Equal([target.Name], (await MigrationRunner.MigrateAsync(db.ConnectionString)).RepeatableScripts);
        Assert.Empty((await MigrationRunner.MigrateAsync(db.ConnectionString)).RepeatableScripts);
        AssertSameAsFixture(await FunctionsAsync(db.ConnectionString), allowChanged: true);
    }

    [Fact]
    public async Task AFailingScriptLeavesEveryScriptAsItWas()
    {
        var scripts = MigrationRunner.EmbeddedRepeatableScripts();
        var first = scripts[0];
        var broken = scripts.Select(s => s == first ? s with { Sql = s.Sql + "\n-- edited\n" } : s)
            .Append(new RepeatableScript("99_broken.sql", "SELECT rscapret_no_such_function();")).ToList();

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => MigrationRunner.MigrateAsync(db.ConnectionString, repeatableScripts: broken));
        Assert.Contains("functions/99_broken.sql failed", ex.Message);
        // The edited script before it was rolled back with it: still recorded with its embedded text.
        Assert.Equal(first.Checksum, await ScalarAsync<string>(db.ConnectionString,
            $"SELECT checksum FROM schema_repeatable_scripts WHERE name = '{first.Name}'"));
        Assert.Equal(0L, await ScalarAsync<long>(db.ConnectionString, "SELECT count(*) FROM schema_repeatable_scripts WHERE name = '99_broken.sql'"));
        // The runner let go of its advisory lock (another run would wait for it) and finds nothing to do.
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        Assert.Empty((await MigrationRunner.MigrateAsync(db.ConnectionString, ct: timeout.Token)).RepeatableScripts);
    }

    [Fact]
    public async Task TheScriptsCreateTheirFunctionsFromNothingInFileNameOrder()
    {
        // Every function dropped (the models trigger with its function), then the scripts alone, in order, on top:
        // a script that called a function of a later one would fail here (SQL-language bodies are checked as created).
        await using var conn = new NpgsqlConnection(db.ConnectionString);
        await conn.OpenAsync();
        await using var tx = await conn.BeginTransactionAsync();
        var before = await FunctionsAsync(conn, tx);
        foreach (var (signature, _) in before)
            await using (var drop = new NpgsqlCommand($"DROP FUNCTION {signature} CASCADE", conn, tx)) await drop.ExecuteNonQueryAsync();
        Assert.Empty(await FunctionsAsync(conn, tx));
        foreach (var script in MigrationRunner.EmbeddedRepeatableScripts())
        {
            try
            {
                await using var apply = new NpgsqlCommand(script.Sql, conn, tx);
                await apply.ExecuteNonQueryAsync();
            }
            catch (PostgresException e)
            {
                Assert.Fail($"functions/{script.Name} does not apply after the scripts before it alone: {e.MessageText}");
            }
        }
        Assert.Equal(before, await FunctionsAsync(conn, tx));
        await tx.RollbackAsync();
    }
}
