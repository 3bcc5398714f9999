using RsCapRet.Core.Configuration;

namespace RsCapRet.Storage;

/// <summary>The catalogue's connection strings (every command's --db overrides <see cref="ConnectionString"/>).</summary>
public sealed class DatabaseOptions
{
    /// <summary>Npgsql connection string of the catalogue; null: the db.env of RSCAPRET_DATA_DIR (<see cref="RsCapRetDatabase.ResolveConnectionString"/>).</summary>
    [EnvironmentVariable(RsCapRetDatabase.ConnectionStringVariable)]
    public string? ConnectionString { get; init; }

    /// <summary>A read-only server (streaming replica) for searches and catalogue views; null: everything on the primary.</summary>
    [EnvironmentVariable(RsCapRetDatabase.ReadConnectionStringVariable)]
    public string? ReadConnectionString { get; init; }
}
