using Npgsql;
using Pgvector.Npgsql;

namespace RsCapRet.Storage;

/// <summary>
/// Entry point to the catalogue database: resolves the connection string (RSCAPRET_DB), migrates, and builds
/// the Npgsql data source with the PostGIS (NetTopologySuite) and pgvector type mappings.
/// </summary>
public static class RsCapRetDatabase
{
    public const string ConnectionStringVariable = "RSCAPRET_DB";

    /// <summary>An optional second connection string for searches: a streaming replica of the RSCAPRET_DB primary.</summary>
    public const string ReadConnectionStringVariable = "RSCAPRET_DB_READ";

    /// <summary>
    /// RSCAPRET_DB_READ when set (searches and catalogue views then read from that server, e.g. a streaming replica;
    /// docs/architecture.md, "Capacity plan"), else null: everything uses the primary.
    /// </summary>
    public static string? ResolveReadConnectionString() =>
        Core.Configuration.EnvironmentSettings.Load<DatabaseOptions>().ReadConnectionString;

    /// <summary>
    /// RSCAPRET_DB from the environment, else the db.env that scripts/db.sh writes in RSCAPRET_DATA_DIR (a relative
    /// path means the current directory), default .data/ of the checkout.
    /// </summary>
    public static string ResolveConnectionString(string? explicitValue = null)
    {
        if (!string.IsNullOrWhiteSpace(explicitValue)) return explicitValue;
        var env = Core.Configuration.EnvironmentSettings.FromEnvironment();
        if (Core.Configuration.EnvironmentSettings.Load<DatabaseOptions>(env).ConnectionString is { } configured) return configured;
        var dataDir = Core.Configuration.EnvironmentSettings.Load<Core.Configuration.DataPathOptions>(env).DataDirectory is { } data ? Path.GetFullPath(data)
            : Core.RepositoryPaths.TryFindRoot() is { } root ? Path.Combine(root, ".data") : null;
        if (dataDir != null)
        {
            var file = Path.Combine(dataDir, "db.env");
            if (File.Exists(file))
            {
                var fromFile = ParseEnvFile(file);
                if (fromFile != null) return fromFile;
            }
        }
        throw new InvalidOperationException(
            $"No database configured: set {ConnectionStringVariable} to an Npgsql connection string " +
            $"(or run scripts/db.sh start, which writes {(dataDir != null ? Path.Combine(dataDir, "db.env") : ".data/db.env")}).");
    }

    /// <summary>The RSCAPRET_DB value of an env file as scripts/db.sh writes it (export RSCAPRET_DB='...').</summary>
    public static string? ParseEnvFile(string path)
    {
        foreach (var raw in File.ReadAllLines(path))
        {
            var line = raw.Trim();
            if (line.StartsWith("export ", StringComparison.Ordinal)) line = line[7..].TrimStart();
            if (!line.StartsWith(ConnectionStringVariable + "=", StringComparison.Ordinal)) continue;
            return line[(ConnectionStringVariable.Length + 1)..].Trim().Trim('\'', '"');
        }
        return null;
    }

    /// <summary>Applies pending migrations, then returns a data source with the spatial and vector mappings.</summary>
    public static async Task<NpgsqlDataSource> OpenAsync(string connectionString, bool migrate = true, CancellationToken ct = default)
    {
        // Migrate over a plain connection first: the typed data source must see the extension types at start-up.
        // A long step (a model's vector graph after an upgrade) says what it is doing on stderr.
        if (migrate) await MigrationRunner.ApplyAsync(connectionString, ct: ct, log: line => Console.Error.WriteLine("rscapret: " + line));
        return CreateDataSource(connectionString);
    }

    public static NpgsqlDataSource CreateDataSource(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        // Statements sent again and again (a search, a tile lookup) are prepared on each connection after a few uses,
        // unless the connection string says otherwise: parsing and planning the call of rscapret_search anew each
        // time cost more than the search itself (bench search at 100k tiles: p50 2.14 ms unprepared, 0.98 ms prepared,
        // against 0.84 ms for a prepared plain index scan). A pooler in transaction mode needs Max Auto Prepare=0.
        if (!System.Text.RegularExpressions.Regex.IsMatch(connectionString, @"(^|;)\s*max\s*auto\s*prepare\s*=", System.Text.RegularExpressions.RegexOptions.IgnoreCase))
            builder.ConnectionStringBuilder.MaxAutoPrepare = 64;
        builder.UseNetTopologySuite();
        builder.UseVector();
        return builder.Build();
    }
}
