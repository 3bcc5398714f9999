using System.Diagnostics;
using System.Text.RegularExpressions;
using Npgsql;
using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.Raster.Gdal;
using RsCapRet.Storage;

namespace RsCapRet.Bench;

/// <summary>
/// Indexing an archive as a user runs it: `rscapret index-archive FOLDER --wait` (the CLI in its own process, the
/// scan and its ingest jobs on a worker in that process) over --files small real rasters (windows of the 0.25 m aerial
/// photo, each one padded tile) into a fresh catalogue; then a re-scan with nothing changed (no file may be
/// re-hashed); then a re-scan after renaming --renames files (no tile may be computed: the renamed files keep their
/// versions). Each round repeats the three in that order on a fresh copy of the folder and a fresh database.
/// </summary>
public static partial class ArchiveBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        var files = a.Int("--files", 1000);
        var renames = a.Int("--renames", 100);
        if (files < 1 || renames < 0 || renames > files) throw new BenchArgsException("--files must be at least 1 and --renames 0..files");
        var rounds = a.Int("--rounds", 3);
        if (rounds < 1) throw new BenchArgsException("--rounds must be at least 1");
        var root = RepositoryPaths.FindRoot();
        var cli = Path.Combine(root, "src", "RsCapRet.Cli", "bin", "Release", "net10.0", "linux-x64", "rscapret.dll");
        if (!File.Exists(cli)) throw new BenchArgsException($"{cli}: build the CLI first (./rscapret --help builds it)");

        var admin = RsCapRetDatabase.ResolveConnectionString();
        var source = Directory.CreateTempSubdirectory("rscapret-bench-archive-src-");
        var env = await BenchEnvironment.CollectAsync(torch: false, admin);
        var report = new BenchReport("archive", env);
        report.Options["files"] = files;
        report.Options["renames"] = renames;
        report.Options["rounds"] = rounds;
        try
        {
            var made = Stopwatch.StartNew();
            MakeArchive(source.FullName, files);
            Console.WriteLine($"archive: {files} files of 100x80 px (0.25 m, EPSG:28992) made in {made.Elapsed.TotalSeconds:F1} s in {source.FullName}");
            var first = new List<Sample>();
            var unchanged = new List<Sample>();
            var renamed = new List<Sample>();
            for (var round = 1; round <= rounds; round++)
            {
                var db = $"rscapret_bench_archive_{round}";
                await BenchDatabase.DropAsync(admin, db);
                var cs = await BenchDatabase.EnsureAsync(admin, db);
                var folder = Directory.CreateTempSubdirectory("rscapret-bench-archive-");
                try
                {
                    foreach (var f in Directory.EnumerateFiles(source.FullName)) File.Copy(f, Path.Combine(folder.FullName, Path.GetFileName(f)));
                    var (s1, o1) = await IndexAsync(cli, folder.FullName, cs);
                    var tiles1 = await TilesAsync(cs);
                    first.Add(new Sample(s1, [new("files/s", "files/s", files / s1), new("tiles stored", "tiles", tiles1)]));
                    var (s2, o2) = await IndexAsync(cli, folder.FullName, cs);
                    unchanged.Add(new Sample(s2, [new("files hashed", "files", Hashed(o2)), new("tiles added", "tiles", await TilesAsync(cs) - tiles1)]));
                    foreach (var f in Directory.EnumerateFiles(folder.FullName).Order(StringComparer.Ordinal).Take(renames))
                        File.Move(f, Path.Combine(folder.FullName, "renamed-" + Path.GetFileName(f)));
                    var (s3, o3) = await IndexAsync(cli, folder.FullName, cs);
                    var moved = Regex.Match(o3, @"(\d+) moved").Groups[1].Value;
                    renamed.Add(new Sample(s3, [new("files hashed", "files", Hashed(o3)), new("files moved", "files", double.Parse(moved)),
                        new("tiles added", "tiles", await TilesAsync(cs) - tiles1)]));
                    Console.WriteLine($"round {round}: index {s1:F1} s, re-scan {s2:F2} s, re-scan after {renames} renames {s3:F2} s");
                    Console.WriteLine("  " + SummaryLine(o1) + "\n  " + SummaryLine(o2) + "\n  " + SummaryLine(o3));
                }
                finally
                {
                    folder.Delete(recursive: true);
                    await BenchDatabase.DropAsync(admin, db);
                }
            }
            var sides = new List<SideResult>
            {
                new($"index-archive --wait, {files} new files", "s", first),
                new("re-scan, nothing changed", "s", unchanged),
                new($"re-scan after renaming {renames} files", "s", renamed),
            };
            report.Notes.Add("each figure is a whole `rscapret index-archive FOLDER --wait` process: start, model load (for the first), scan, jobs, exit");
            report.Print(sides, [new RatioSpec(sides[1].Name, sides[0].Name)], 0, rounds);
            return 0;
        }
        finally { source.Delete(recursive: true); }
    }

    private static string SummaryLine(string output) => output.Split('\n').LastOrDefault(l => l.Contains("files seen", StringComparison.Ordinal))?.Trim() ?? "(no summary)";

    private static double Hashed(string output) => double.Parse(HashedPattern().Match(output).Groups[1].Value);

    [GeneratedRegex(@"\((\d+) hashed\)")]
    private static partial Regex HashedPattern();

    private static async Task<(double Seconds, string Output)> IndexAsync(string cli, string folder, string cs)
    {
        var psi = new ProcessStartInfo("dotnet", [cli, "index-archive", folder, "--wait", "--db", cs])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        sw.Stop();
        if (p.ExitCode != 0) throw new InvalidOperationException($"index-archive exited {p.ExitCode}: {await stderr}");
        return (sw.Elapsed.TotalSeconds, await stdout);
    }

    private static async Task<double> TilesAsync(string cs)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM tiles", conn);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>Distinct 100 x 80 px windows of the 0.25 m aerial photo, each its own GeoTIFF with its own origin.</summary>
    private static void MakeArchive(string folder, int files)
    {
        var scene = Path.Combine(RepositoryPaths.SharedDirectory(), "data", "scenes", "deepforest_test_tiled_epsg28992_0.25m.tif");
        using var ds = RasterDataset.Open(scene);
        var gt = ds.GeoTransform!;
        const int w = 100, h = 80;
        var perRow = (ds.Width - w) / 9 + 1;
        for (var i = 0; i < files; i++)
        {
            int x = i % perRow * 9, y = i / perRow * 7 % (ds.Height - h + 1);
            var bands = new List<byte[]>();
            for (var b = 1; b <= 3; b++)
            {
                var plane = new byte[w * h];
                ds.Read(b, new PixelWindow(x, y, w, h), plane.AsSpan(), w, h, ResampleAlgorithm.Nearest);
                bands.Add(plane);
            }
            RasterWriter.WriteGeoTiff(Path.Combine(folder, $"tile_{i:D5}.tif"), w, h, bands,
                [gt[0] + x * gt[1], gt[1], 0, gt[3] + y * gt[5], 0, gt[5]], epsg: 28992,
                colorInterpretations: [ColorInterpretation.Red, ColorInterpretation.Green, ColorInterpretation.Blue]);
        }
    }
}
