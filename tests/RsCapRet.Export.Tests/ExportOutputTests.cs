using RsCapRet.Cli.Commands;
using RsCapRet.TestSupport;

namespace RsCapRet.Export.Tests;

/// <summary>
/// `rscapret export --out` (hardening round two, item 5): any file name works in every format (X.flatgeobuf no longer
/// leaves an X.partial.flatgeobuf folder), nothing temporary is left beside the output, an existing file is kept
/// unless --overwrite, and an output that cannot be written is one `error:` line and exit 2 — no stack trace, no
/// internal names (temporary files, /vsimem/) — for export and classify alike.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]   // Unix file modes make a folder unwritable
public sealed class ExportOutputTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-export-out-");
    public void Dispose()
    {
        foreach (var d in _dir.EnumerateDirectories()) d.UnixFileMode |= UnixFileMode.UserWrite;
        _dir.Delete(true);
    }

    /// <summary>A folder this process cannot write to: a read-only one, or /sys when running as root (which ignores modes).</summary>
    private string UnwritableFolder()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_dir.FullName, "read-only"));
        folder.UnixFileMode = UnixFileMode.UserRead | UnixFileMode.UserExecute;
        try
        {
            File.WriteAllText(Path.Combine(folder.FullName, "probe"), "");
            File.Delete(Path.Combine(folder.FullName, "probe"));
            return "/sys";
        }
        catch (UnauthorizedAccessException) { return folder.FullName; }
    }

    private static void AssertOneErrorLine((int Code, string Out, string Err) run, string expected)
    {
        Assert.True(run.Code == CommandAction.UserError, $"exit {run.Code}\n{run.Out}\n{run.Err}");
        var line = Assert.Single(run.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.Contains(expected, line);
        foreach (var internalName in new[] { "   at ", "Exception", "/vsimem", "partial", ".geojsons", "rscapret-upload" })
            Assert.DoesNotContain(internalName, run.Err);
    }

    [Fact]
    public async Task TilesWithoutAFootprintAreNamedNotDroppedSilently()
    {
        // A plain PNG indexed with --no-crs is searchable, but a map file has no place for its tile: the export says so.
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model-plain"));
        var plain = Path.Combine(_dir.FullName, "plain.png");
        var image = Core.RgbImage.Create(64, 64);
        for (var i = 0; i < image.Pixels.Length; i++) image.Pixels[i] = (byte)(i * 7 % 251);
        await File.WriteAllBytesAsync(plain, Raster.PngEncoder.Encode(image));
        var ingest = await CliRunner.Run("ingest", plain, "--no-crs", "--model", model, "--device", "cpu", "--no-captions", "--db", db.ConnectionString);
        Assert.True(ingest.Code == 0, ingest.Err);
        var export = await CliRunner.Run("export", "--format", "geojson", "--out", Path.Combine(_dir.FullName, "all.geojson"), "--db", db.ConnectionString);
        Assert.True(export.Code == 0, export.Err);
        Assert.Contains(" tiles written to ", export.Out);
        Assert.Contains("(GeoJSON, ", export.Out);
        Assert.Matches(@"^note: [1-9]\d* tiles? of 1 scene without georeferencing \(no footprint\) (is|are) not in the file$", export.Err.Trim());
        // An area filter leaves such tiles out by definition: no note then.
        var inArea = await CliRunner.Run("export", "--format", "geojson", "--bbox", "-100,46,-98,48", "--out", Path.Combine(_dir.FullName, "area.geojson"),
            "--db", db.ConnectionString);
        Assert.True(inArea.Code == 0, inArea.Err);
        Assert.Equal("", inArea.Err.Trim());
    }

    [Fact]
    public async Task AnyFileNameWorksExistingFilesAreKeptAndUnwritableOutputsFailInOneLine()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var scene = TestScenes.SmallScene(_dir.FullName, "export-out.tif", 0);
        var ingest = await CliRunner.Run("ingest", scene, "--model", model, "--device", "cpu", "--no-captions", "--db", db.ConnectionString);
        Assert.True(ingest.Code == 0, ingest.Err);
        var outDir = Directory.CreateDirectory(Path.Combine(_dir.FullName, "out")).FullName;

        // The report's name (X.flatgeobuf), a made-up extension and none at all, in every format; -o as GDAL's utilities spell it.
        var written = new List<string>();
        foreach (var (format, name, option) in new[]
                 {
                     ("flatgeobuf", "tiles.flatgeobuf", "--out"), ("flatgeobuf", "tiles-fgb", "--out"), ("geoparquet", "tiles.data", "--out"),
                     ("geoparquet", "tiles-parquet", "-o"), ("geojson", "tiles.json.out", "-o"),
                 })
        {
            var path = Path.Combine(outDir, name);
            var run = await CliRunner.Run("export", "--format", format, option, path, "--db", db.ConnectionString);
            Assert.True(run.Code == 0, $"{format} to {name}: {run.Err}");
            Assert.True(File.Exists(path), $"{name} is not a file");
            written.Add(name);
        }
        // FlatGeobuf under a name GDAL does not know: still FlatGeobuf, readable.
        var (code, info, err) = await TestProcess.RunAsync("ogrinfo", ["-ro", "-so", "-al", Path.Combine(outDir, "tiles.flatgeobuf")]);
        Assert.True(code == 0, err);
        Assert.Contains("FlatGeobuf", info);
        // Nothing temporary left beside the outputs.
        Assert.Equal(written.Order(), Directory.EnumerateFileSystemEntries(outDir).Select(Path.GetFileName).Order());

        // An existing file is kept unless --overwrite (or --force).
        var existing = Path.Combine(outDir, "tiles.data");
        var before = await File.ReadAllBytesAsync(existing);
        await File.WriteAllTextAsync(existing, "keep me");
        AssertOneErrorLine(await CliRunner.Run("export", "--format", "geoparquet", "--out", existing, "--db", db.ConnectionString), "exists (pass --overwrite to replace it)");
        Assert.Equal("keep me", await File.ReadAllTextAsync(existing));
        foreach (var flag in new[] { "--overwrite", "--force" })
        {
            var replaced = await CliRunner.Run("export", "--format", "geoparquet", "--out", existing, flag, "--db", db.ConnectionString);
            Assert.True(replaced.Code == 0, replaced.Err);
            Assert.Equal(before.Length, new FileInfo(existing).Length);
        }

        // Outputs that cannot be written: one line naming the path, exit 2, in every format and for classify.
        var unwritable = UnwritableFolder();
        foreach (var format in new[] { "geoparquet", "flatgeobuf", "geojson" })
        {
            var target = Path.Combine(unwritable, $"tiles.{format}");
            AssertOneErrorLine(await CliRunner.Run("export", "--format", format, "--out", target, "--db", db.ConnectionString), target);
        }
        AssertOneErrorLine(await CliRunner.Run("classify", scene, "--labels", "farm,river", "--model", model, "--device", "cpu",
            "--out", Path.Combine(unwritable, "classes"), "--db", db.ConnectionString), Path.Combine(unwritable, "classes"));
        Assert.Equal(written.Order(), Directory.EnumerateFileSystemEntries(outDir).Select(Path.GetFileName).Order());
    }
}
