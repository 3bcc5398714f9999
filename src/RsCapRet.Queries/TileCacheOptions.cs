using RsCapRet.Core.Configuration;

namespace RsCapRet.Queries;

/// <summary>The map's rendered imagery tiles on disk (<see cref="TileDiskCache.FromEnvironment"/>).</summary>
public sealed class TileCacheOptions
{
    /// <summary>The folder; null: tile-cache/ in RSCAPRET_DATA_DIR, else .data/tile-cache of the checkout, else the temp folder.</summary>
    [EnvironmentVariable("RSCAPRET_TILE_CACHE")]
    public string? Directory { get; init; }

    /// <summary>The most the cache may hold, in megabytes; least recently used tiles go first.</summary>
    [EnvironmentVariable("RSCAPRET_TILE_CACHE_MB", SettingRule.PositiveInteger)]
    public long SizeMb { get; init; } = 512;
}
