using RsCapRet.Core.Configuration;

namespace RsCapRet.Raster;

/// <summary>
/// Bounds on what one scene may make GDAL do, where GDAL comes from and whether it may use the network, and the
/// file-name pattern of acquisition dates: the defaults of <see cref="TilingOptions"/> and of GDAL's setup.
/// </summary>
public sealed class RasterOptions : IChecksSettings
{
    /// <summary>Most grid tiles one scene may plan: a scene that declares a huge size fails at once.</summary>
    [EnvironmentVariable("RSCAPRET_MAX_GRID_TILES", SettingRule.PositiveInteger)]
    public long MaxGridTiles { get; init; } = 250_000;

    /// <summary>Most bands GDAL may decode for each pixel.</summary>
    [EnvironmentVariable(TilingOptions.MaxDecodedBandsVariable, SettingRule.PositiveInteger)]
    public int MaxDecodedBands { get; init; } = 64;

    /// <summary>Most megabytes one block (strip or tile) may decode to.</summary>
    [EnvironmentVariable(TilingOptions.MaxBlockMbVariable, SettingRule.PositiveInteger)]
    public int MaxBlockMb { get; init; } = 256;

    /// <summary>Most declared bytes of decoded bands per byte of the files GDAL reads for a scene.</summary>
    [EnvironmentVariable(TilingOptions.MaxDecodeRatioVariable, SettingRule.PositiveInteger)]
    public int MaxDecodeRatio { get; init; } = 10_000;

    /// <summary>File-name pattern with a (?&lt;date&gt;yyyyMMdd) group; null: <see cref="AcquisitionTimes.DefaultPattern"/>.</summary>
    [EnvironmentVariable(AcquisitionTimes.PatternVariable)]
    public string? AcquiredPattern { get; init; }

    /// <summary>Let GDAL reach the network (/vsicurl/, http:// in a VRT); off by default.</summary>
    [EnvironmentVariable("RSCAPRET_GDAL_NETWORK", SettingRule.Flag)]
    public bool GdalNetwork { get; init; }

    /// <summary>Path of the libgdal shared library; null: the usual names are tried.</summary>
    [EnvironmentVariable("RSCAPRET_GDAL_LIBRARY")]
    public string? GdalLibrary { get; init; }

    public IEnumerable<string> Problems()
    {
        if (AcquiredPattern is null) yield break;
        string? problem = null;
        try { AcquisitionTimes.Pattern(AcquiredPattern, AcquisitionTimes.PatternVariable + ": "); }
        catch (FormatException e) { problem = e.Message; }
        if (problem is not null) yield return problem;
    }
}
