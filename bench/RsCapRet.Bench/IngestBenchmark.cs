using System.Diagnostics;
using System.Globalization;
using Npgsql;
using RsCapRet.Core;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Bench;

/// <summary>
/// Whole-pipeline throughput against model-only throughput on the same kind of tiles, and peak resident memory
/// while ingesting a large synthetic scene (made with gdal_create), measured in a child process.
/// </summary>
public static class IngestBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var size = (int)Arg(args, "--size", 20000);
        var captions = args.Contains("--captions");
        var model = args.SkipWhile(a => a != "--model").Skip(1).FirstOrDefault() ?? Path.Combine(RepositoryPaths.FindRoot(), "models", "default");
        var scene = Path.Combine(Path.GetTempPath(), $"rscapret-bench-scene-{size}.tif");
        if (!File.Exists(scene))
        {
            // 3 Byte bands with a gentle gradient pattern from GDAL's own tool, so writing it costs no memory here.
            var psi = new ProcessStartInfo("gdal_create", ["-outsize", $"{size}", $"{size}", "-bands", "3", "-ot", "Byte", "-burn", "90", "-burn", "120", "-burn", "80",
                "-a_srs", "EPSG:32614", "-a_ullr", "500000", "5200000", $"{500000 + size * 0.8}", $"{5200000 - size * 0.8}", "-co", "TILED=YES", "-co", "COMPRESS=DEFLATE", scene]);
            using var p = Process.Start(psi)!;
            await p.WaitForExitAsync();
            if (p.ExitCode != 0) throw new InvalidOperationException("gdal_create failed (gdal-bin installed?)");
        }
        Console.WriteLine($"scene: {scene} ({size} x {size} px, {new FileInfo(scene).Length / 1e6:F1} MB on disk); captions {(captions ? "on" : "off")}");
        var child = new ProcessStartInfo("dotnet", [typeof(IngestBenchmark).Assembly.Location, "ingest-child", scene, model, captions ? "1" : "0"]) { RedirectStandardOutput = true };
        using var c = Process.Start(child)!;
        Console.Write(await c.StandardOutput.ReadToEndAsync());
        await c.WaitForExitAsync();
        return c.ExitCode;
    }

    public static async Task<int> ChildAsync(string scene, string model, bool captions)
    {
        long size;
        using (var probe = RasterDataset.Open(scene)) size = probe.Width;
        var admin = RsCapRetDatabase.ResolveConnectionString();
        var db = "rscapret_bench_ingest";
        await using (var conn = new NpgsqlConnection(admin))
        {
            await conn.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)", conn);
            await drop.ExecuteNonQueryAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{db}\"", conn);
            await create.ExecuteNonQueryAsync();
        }
        var cs = new NpgsqlConnectionStringBuilder(admin) { Database = db }.ConnectionString;
        await using var ds = await RsCapRetDatabase.OpenAsync(cs);
        using var encoder = RsCapRetTileEncoder.Load(model, "cpu");

        // Model alone: the first 512 tiles of the scene, already in memory.
        List<RgbImage> sample;
        using (var tiler = SceneTiler.Open(scene, new TilingOptions { TileSize = encoder.InputSize }))
            sample = tiler.Tiles().Take(512).Select(t => t.Image).ToList();
        encoder.Encode(sample.Take(16).ToList(), captions, CancellationToken.None);
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < sample.Count; i += 16) encoder.Encode(sample.Skip(i).Take(16).ToList(), captions, CancellationToken.None);
        var modelOnly = sample.Count / sw.Elapsed.TotalSeconds;
        sample = [];
        GC.Collect();
        var before = ModelBenchmark.PeakRss();

        sw.Restart();
        var result = await new SceneIngestor(new CatalogStore(ds), encoder).IngestAsync(scene, new IngestOptions { Caption = captions });
        var pipeline = result.Tiles / sw.Elapsed.TotalSeconds;
        Console.WriteLine(FormattableString.Invariant($"model only: {modelOnly:F1} tiles/s ({encoder.InputSize} px tiles, batch 16)"));
        Console.WriteLine(FormattableString.Invariant($"pipeline  : {pipeline:F1} tiles/s ({result.Tiles} tiles in {sw.Elapsed.TotalSeconds:F0} s: read, encode, COPY, commit)"));
        Console.WriteLine(FormattableString.Invariant($"ratio pipeline / model only: {pipeline / modelOnly:F2}"));
        Console.WriteLine(FormattableString.Invariant($"peak RSS: {ModelBenchmark.PeakRss() / 1e6:F0} MB during ingestion (before: {before / 1e6:F0} MB); the scene holds {3.0 * size * size / 1e6:F0} MB of pixels"));
        await ds.DisposeAsync();
        NpgsqlConnection.ClearAllPools();
        await using (var conn = new NpgsqlConnection(admin))
        {
            await conn.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)", conn);
            await drop.ExecuteNonQueryAsync();
        }
        return 0;
    }

    private static double Arg(string[] args, string name, double dflt)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && double.TryParse(args[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : dflt;
    }
}
