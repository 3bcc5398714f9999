using RsCapRet.Core;
using RsCapRet.Raster;

namespace RsCapRet.TestSupport;

/// <summary>Small scenes cut from the NAIP sample for the ingestion, job, API and map page tests.</summary>
public static class TestScenes
{
    /// <summary>A real scene of ../shared/data/scenes by file name.</summary>
    public static string Shared(string name) => Path.Combine(RepositoryPaths.SharedDirectory(), "data", "scenes", name);

    /// <summary>A window of a real raster written as is with its georeference (`gdal_translate -srcwin`, GDAL's own tool).</summary>
    public static string Crop(string source, string target, int x, int y, int width, int height)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("gdal_translate",
            ["-q", "-srcwin", $"{x}", $"{y}", $"{width}", $"{height}", source, target])
        { RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"gdal_translate {source}: {err}");
        return target;
    }

    /// <summary>
    /// A small RGB GeoTIFF (64x64, UTM 14N) cut from the NAIP sample, offset so each call makes different content;
    /// <paramref name="contentOffset"/> takes the pixels from elsewhere while keeping the place (another "acquisition");
    /// <paramref name="metadata"/> adds dataset metadata items (e.g. TIFFTAG_DATETIME).
    /// </summary>
    public static string SmallScene(string directory, string name, int offset, int? contentOffset = null,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var path = Path.Combine(directory, name);
        using var ds = RasterDataset.Open(Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes", "naip_m_4709963_se_14_1_20200831.tif"));
        var from = 200 + (contentOffset ?? offset);
        var bands = Enumerable.Range(1, 3).Select(b => { var buf = new byte[64 * 64]; ds.Read(b, new PixelWindow(from, 200, 64, 64), buf.AsSpan(), 64, 64); return buf; }).ToArray();
        RasterWriter.WriteGeoTiff(path, 64, 64, bands, [485899 + 5 * (200 + offset), 5, 0, 5209246 - 1000, 0, -5], 26914, metadata: metadata);
        return path;
    }

    /// <summary>
    /// An RGB GeoTIFF of <paramref name="size"/>² px cut from the NAIP sample (UTM 14N, 5 m; upsampled where the cut is
    /// smaller), offset so each call makes different content.
    /// </summary>
    public static string Cut(string path, int size, int offset)
    {
        using var ds = RasterDataset.Open(Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes", "naip_m_4709963_se_14_1_20200831.tif"));
        var bands = Enumerable.Range(1, 3).Select(b =>
        {
            var buf = new byte[size * size];
            ds.Read(b, new PixelWindow(100 + offset, 100, Math.Min(size, 700 - offset), Math.Min(size, 600)), buf.AsSpan(), size, size);
            return buf;
        }).ToArray();
        RasterWriter.WriteGeoTiff(path, size, size, bands, [485899 + 5 * (100 + offset), 5, 0, 5209246, 0, -5], 26914);
        return path;
    }
}
