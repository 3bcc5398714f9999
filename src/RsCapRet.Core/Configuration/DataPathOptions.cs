namespace RsCapRet.Core.Configuration;

/// <summary>Where local data lives: the cluster's folder and env files, and the shared fixtures/data folder.</summary>
public sealed class DataPathOptions
{
    /// <summary>The local cluster's folder (db.env, tile-cache/ ...); null: .data/ of the checkout. Relative: the current directory.</summary>
    [EnvironmentVariable("RSCAPRET_DATA_DIR")]
    public string? DataDirectory { get; init; }

    /// <summary>Shared fixtures/data folder; null: ../shared beside the checkout.</summary>
    [EnvironmentVariable("RSCAPRET_SHARED")]
    public string? SharedDirectory { get; init; }
}
