using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;
using static TorchSharp.torch;

namespace RsCapRet.Bench;

/// <summary>
/// Whole-pipeline throughput against model-only throughput over the same tiles of the same scene, in the same
/// rounds; peak resident memory of each side; where a pipeline tile's time goes (setup, waiting for GDAL,
/// encoding, COPY, commit) and what the model's share is made of (read, preprocess, embed, caption).
/// </summary>
public static class IngestBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        var size = a.Int("--size", 4480);
        var captions = a.Has("--captions");
        var batchSize = a.Int("--batch", new IngestOptions().BatchSize);
        var modelDir = a.String("--model", Path.Combine(RepositoryPaths.FindRoot(), "models", "default"));
        var (warmup, rounds) = a.RoundCounts();
        // Issue 31: image vectors as the mean of N dihedral views (test-time augmentation), N-1 more backbone passes a tile.
        var ttaViews = a.String("--tta") is { } list ? ParseViews(list) : [];

        var admin = RsCapRetDatabase.ResolveConnectionString();
        const string db = "rscapret_bench_ingest";
        await BenchDatabase.DropAsync(admin, db);
        var cs = await BenchDatabase.EnsureAsync(admin, db);
        try
        {
            await using var ds = await RsCapRetDatabase.OpenAsync(cs);
            using var encoder = RsCapRetTileEncoder.Load(modelDir, "cpu");
            // The scene is made at the model's own GSD, so no model's resolution plan resamples it and the tile count
            // is (size / input size)^2 whatever the model; --scene takes a real file instead.
            var scene = a.String("--scene") ?? await SyntheticSceneAsync(size, RsCapRetConfig.Load(modelDir).Gsd ?? 0.8);
            var (tiling, plan) = TilingPlan.For(scene, new TilingOptions(), new ModelTiling(encoder.InputSize, encoder.TrainingResolution));
            int gridTiles;
            using (var probe = SceneTiler.Open(scene, tiling)) gridTiles = probe.Info.GridRows * probe.Info.GridCols;

            var env = await BenchEnvironment.CollectAsync(torch: true, cs);
            var report = new BenchReport("ingest", env);
            report.Options["scene"] = scene;
            report.Options["size"] = a.String("--scene") is null ? size : null;
            report.Options["captions"] = captions;
            report.Options["batch"] = batchSize;
            report.Options["model"] = Path.GetFullPath(modelDir);
            report.Options["tta"] = ttaViews.Count > 0 ? string.Join(',', ttaViews) : null;
            report.Facts.Add(("scene", $"{scene} ({new FileInfo(scene).Length / 1e6:F1} MB on disk), {gridTiles} grid tiles of {encoder.InputSize} px; {plan.Note}"));
            Console.WriteLine($"scene: {scene}: {gridTiles} grid tiles of {encoder.InputSize} px, batch {batchSize}, captions {(captions ? "on" : "off")}; model {modelDir}");

            var canResetPeak = PeakRss.TryReset();
            int? modelOnlyTiles = null;
            var sides = new List<Side>
            {
                new("model only", "tiles/s", () => Task.FromResult(ModelOnly(encoder, scene, tiling, batchSize, captions, 1, canResetPeak, ref modelOnlyTiles))),
                new("pipeline", "tiles/s", () => PipelineAsync(ds, encoder, scene, batchSize, captions, canResetPeak, modelOnlyTiles)),
            };
            foreach (var views in ttaViews)
                sides.Add(new($"model only, TTA {views} views", "tiles/s", () => Task.FromResult(ModelOnly(encoder, scene, tiling, batchSize, captions, views, canResetPeak, ref modelOnlyTiles))));
            var results = await Rounds.RunAsync(sides, warmup, rounds);
            report.Facts.Add(("tiles per round", modelOnlyTiles?.ToString(CultureInfo.InvariantCulture)));
            if (!canResetPeak) report.Facts.Add(("peak RSS per side", "not available (the kernel refused to reset VmHWM through /proc/self/clear_refs)"));
            report.Notes.AddRange(Interpretation(results, captions));
            report.Print(results, [new RatioSpec("pipeline", "model only"), .. ttaViews.Select(v => new RatioSpec($"model only, TTA {v} views", "model only"))], warmup, rounds);
            await ds.DisposeAsync();
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await BenchDatabase.DropAsync(admin, db);
        }
        return 0;
    }

    /// <summary>
    /// The model alone over every tile of the scene: GDAL reads a batch (timed as "read", off the model's clock),
    /// then the steps of RsCapRetTileEncoder.Encode run one by one, each on its own clock.
    /// </summary>
    private static Sample ModelOnly(RsCapRetTileEncoder encoder, string scene, TilingOptions tiling, int batchSize, bool captions, int views, bool canResetPeak,
        ref int? tileCount)
    {
        var rssStart = PeakRss.Current();
        if (canResetPeak) PeakRss.TryReset();
        double read = 0, preprocess = 0, embed = 0, caption = 0, results = 0;
        var tiles = 0;
        using (var tiler = SceneTiler.Open(scene, tiling))
        using (var it = tiler.Tiles().GetEnumerator())
        {
            var batch = new List<RgbImage>(batchSize);
            while (true)
            {
                var t = Stopwatch.GetTimestamp();
                batch.Clear();
                while (batch.Count < batchSize && it.MoveNext()) batch.Add(it.Current.Image);
                read += Stopwatch.GetElapsedTime(t).TotalSeconds;
                if (batch.Count == 0) break;

                // The same calls, in the same order, as RsCapRetTileEncoder.Encode; timed apart.
                using var _ = no_grad();
                using var scope = NewDisposeScope();
                t = Stopwatch.GetTimestamp();
                var pixels = encoder.Preprocessor.Process(batch);
                preprocess += Lap(ref t);
                var pooled = encoder.Model.PooledImage(pixels);   // one backbone pass feeds vectors and captions, as in Encode
                var vectors = (views == 1 ? encoder.Model.ImageEmbeddingFromPooled(pooled) : encoder.Model.ImageEmbeddingViews(pixels, views, pooled))
                    .to_type(ScalarType.Float32).cpu();
                embed += Lap(ref t);
                var ids = captions ? encoder.Model.GenerateCaptionsFromPooled(pooled, encoder.Generation) : null;
                caption += Lap(ref t);
                var encoded = new List<TileEncoding>(batch.Count);
                for (var i = 0; i < batch.Count; i++)
                    encoded.Add(new TileEncoding(ids is null ? null : RsCapRetTileEncoder.CleanCaption(encoder.Tokenizer.Decode(ids[i])), vectors[i].data<float>().ToArray()));
                results += Lap(ref t);
                tiles += batch.Count;
            }
        }
        tileCount = tiles;
        var modelSeconds = preprocess + embed + caption + results;
        var extras = new List<Metric>
        {
            PerTile("GDAL read (off the clock)", read, tiles),
            PerTile("preprocess", preprocess, tiles),
            PerTile(views == 1 ? "embed (backbone + head)" : $"embed ({views} backbone passes + heads)", embed, tiles),
        };
        if (captions) extras.Add(PerTile(encoder.Generation.BeamWidth > 1 ? $"caption (beam {encoder.Generation.BeamWidth})" : "caption (greedy)", caption, tiles));
        extras.Add(PerTile("vectors/captions to .NET", results, tiles));
        extras.Add(new Metric("RSS at start", "MB", rssStart / 1e6));
        if (canResetPeak) extras.Add(new Metric("peak RSS", "MB", PeakRss.Peak() / 1e6));
        return new Sample(tiles / modelSeconds, extras);
    }

    /// <summary>
    /// The real <see cref="SceneIngestor"/> into an emptied catalogue. It has no timing hooks, so its consumer loop is
    /// timed from outside: a pass-through encoder stamps the start and end of each Encode call and the progress
    /// callback stamps the end of each batch's COPY (and heartbeat); the gaps are waits for GDAL's reader thread.
    /// </summary>
    private static async Task<Sample> PipelineAsync(NpgsqlDataSource ds, RsCapRetTileEncoder encoder, string scene, int batchSize, bool captions,
        bool canResetPeak, int? expectedTiles)
    {
        // Every round ingests into an empty catalogue (the same bytes would otherwise be "already ingested").
        await using (var truncate = ds.CreateCommand("TRUNCATE tiles, scenes RESTART IDENTITY CASCADE")) await truncate.ExecuteNonQueryAsync();
        var rssStart = PeakRss.Current();
        if (canResetPeak) PeakRss.TryReset();
        var timeline = new ConsumerTimeline();
        var ingestor = new SceneIngestor(new CatalogStore(ds), new TimedEncoder(encoder, timeline));
        timeline.Start();
        var result = await ingestor.IngestAsync(scene, new IngestOptions { Caption = captions, BatchSize = batchSize }, timeline.OnProgress);
        var total = timeline.Stop();
        if (result.Outcome != IngestOutcome.Ingested) throw new InvalidOperationException($"ingestion ended {result.OutcomeText}: {result.Error}");
        if (expectedTiles is { } n && result.Tiles != n)
            throw new InvalidOperationException($"the pipeline stored {result.Tiles} tiles, the model-only side encoded {n}: the sides no longer see the same tiles");
        var t = result.Tiles;
        var extras = new List<Metric>
        {
            PerTile("setup: hash, claim, plan", timeline.Setup, t),
            PerTile("waiting for GDAL reader", timeline.Waiting, t),
            PerTile("encode (Encode call)", timeline.Encode, t),
            PerTile("COPY rows + heartbeat", timeline.Copy, t),
            PerTile("commit (end COPY, UPDATE)", timeline.Commit, t),
            PerTile("other", total - timeline.Setup - timeline.Waiting - timeline.Encode - timeline.Copy - timeline.Commit, t),
            new("RSS at start", "MB", rssStart / 1e6),
        };
        if (canResetPeak) extras.Add(new Metric("peak RSS", "MB", PeakRss.Peak() / 1e6));
        return new Sample(t / total, extras);
    }

    private static List<int> ParseViews(string list)
    {
        var views = new List<int>();
        foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var v) || v is < 2 or > 8)
                throw new BenchArgsException($"--tta: '{part}' is not a view count of 2..8 (the dihedral views; 1 is the model-only side)");
            views.Add(v);
        }
        return views;
    }

    private static double Lap(ref long t)
    {
        var s = Stopwatch.GetElapsedTime(t).TotalSeconds;
        t = Stopwatch.GetTimestamp();
        return s;
    }

    private static Metric PerTile(string name, double seconds, int tiles) => new(name, "ms/tile", tiles == 0 ? double.NaN : seconds * 1000 / tiles);

    /// <summary>What the tables mean: what runs alongside what, and where a pipeline tile's time goes.</summary>
    private static IEnumerable<string> Interpretation(IReadOnlyList<SideResult> results, bool captions)
    {
        double Med(string side, string metric) =>
            results.Single(r => r.Name == side).Extras().FirstOrDefault(e => e.Name == metric).Summary?.Median ?? double.NaN;
        var modelMs = 1000 / results.Single(r => r.Name == "model only").Headline.Median;
        var pipelineMs = 1000 / results.Single(r => r.Name == "pipeline").Headline.Median;
        var encodeInPipeline = Med("pipeline", "encode (Encode call)");
        var read = Med("model only", "GDAL read (off the clock)");
        var sb = new StringBuilder();
        sb.AppendLine("what overlaps: GDAL reads and stretches tiles on its own thread, up to two batches ahead of the model;");
        sb.AppendLine("  COPY rows are written on the model's thread between batches, and PostgreSQL inserts them (heap and HNSW index) in");
        sb.AppendLine("  its own process while the next batch is encoded; the commit ends COPY and runs the scene's UPDATE at the end.");
        sb.AppendLine(FormattableString.Invariant(
            $"medians, ms per tile: model only {modelMs:F2}; pipeline {pipelineMs:F2} = setup {Med("pipeline", "setup: hash, claim, plan"):F2} + waiting for GDAL {Med("pipeline", "waiting for GDAL reader"):F2}"));
        sb.AppendLine(FormattableString.Invariant(
            $"  + encode {encodeInPipeline:F2} + COPY {Med("pipeline", "COPY rows + heartbeat"):F2} + commit {Med("pipeline", "commit (end COPY, UPDATE)"):F2} + other {Med("pipeline", "other"):F2}"));
        sb.Append(FormattableString.Invariant(
            $"  encode inside the pipeline vs model only: {encodeInPipeline / modelMs:F2}x (above 1: the reader thread and PostgreSQL take cores from torch); GDAL read alone {read:F2} ms/tile"));
        if (captions) sb.Append("\n  with captions on, Encode runs the backbone twice per batch (ImageEmbedding, then GenerateCaptions' visual prefix): compare embed and caption above");
        yield return sb.ToString();
    }

    /// <summary>Stamps the consumer loop of <see cref="SceneIngestor"/>: Encode calls (from <see cref="TimedEncoder"/>) and progress reports.</summary>
    private sealed class ConsumerTimeline
    {
        private readonly Stopwatch _clock = new();
        private double _mark, _encodeStart;
        private int _reports;
        public double Setup { get; private set; }
        public double Waiting { get; private set; }
        public double Encode { get; private set; }
        public double Copy { get; private set; }
        public double Commit { get; private set; }

        private double Now => _clock.Elapsed.TotalSeconds;

        public void Start() => _clock.Restart();

        public double Stop()
        {
            _clock.Stop();
            return Now;
        }

        public void EncodeStarted()
        {
            _encodeStart = Now;
            Waiting += _encodeStart - _mark;
        }

        public void EncodeEnded()
        {
            _mark = Now;
            Encode += _mark - _encodeStart;
        }

        // SceneIngestor reports once after setup (with a message), once after each batch's COPY and heartbeat
        // (without), and once after the commit (with the summary message).
        public void OnProgress(IngestProgress p)
        {
            var now = Now;
            if (_reports++ == 0) Setup = now;
            else if (p.Message is null) Copy += now - _mark;
            else Commit += now - _mark;
            _mark = now;
        }
    }

    /// <summary>The real encoder with the start and end of each call stamped; everything else passes through.</summary>
    private sealed class TimedEncoder(RsCapRetTileEncoder inner, ConsumerTimeline timeline) : ITileEncoder
    {
        public ModelIdentity Identity => inner.Identity;
        public int InputSize => inner.InputSize;
        public TrainingResolution? TrainingResolution => inner.TrainingResolution;

        public IReadOnlyList<TileEncoding> Encode(IReadOnlyList<RgbImage> tiles, bool caption, CancellationToken ct)
        {
            timeline.EncodeStarted();
            try { return inner.Encode(tiles, caption, ct); }
            finally { timeline.EncodeEnded(); }
        }
    }

    /// <summary>
    /// A size x size RGB GeoTIFF (tiled, DEFLATE) at <paramref name="gsd"/> m/px, its texture a real aerial photo
    /// from the shared data repeated over the scene (a VRT mosaic written out by gdal_translate), so reading and
    /// decompressing cost what real imagery costs. Made once per size and GSD, in the temp folder.
    /// </summary>
    internal static async Task<string> SyntheticSceneAsync(int size, double gsd)
    {
        var g = gsd.ToString("0.###", CultureInfo.InvariantCulture);
        var scene = Path.Combine(Path.GetTempPath(), $"rscapret-bench-scene-{size}px-{g}m.tif");
        if (File.Exists(scene)) return scene;
        var source = Path.Combine(RepositoryPaths.SharedDirectory(), "data", "scenes", "deepforest_test_tiled_epsg28992_0.25m.tif");
        int w, h;
        using (var src = RasterDataset.Open(source)) (w, h) = (src.Width, src.Height);
        var vrt = new StringBuilder($"<VRTDataset rasterXSize=\"{size}\" rasterYSize=\"{size}\">\n");
        for (var band = 1; band <= 3; band++)
        {
            vrt.Append($"  <VRTRasterBand dataType=\"Byte\" band=\"{band}\">\n");
            for (var y = 0; y < size; y += h)
                for (var x = 0; x < size; x += w)
                    vrt.Append($"    <SimpleSource><SourceFilename relativeToVRT=\"0\">{source}</SourceFilename><SourceBand>{band}</SourceBand>" +
                               $"<SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{w}\" ySize=\"{h}\"/><DstRect xOff=\"{x}\" yOff=\"{y}\" xSize=\"{w}\" ySize=\"{h}\"/></SimpleSource>\n");
            vrt.Append("  </VRTRasterBand>\n");
        }
        vrt.Append("</VRTDataset>\n");
        var vrtPath = scene + ".vrt";
        await File.WriteAllTextAsync(vrtPath, vrt.ToString());
        var partial = scene + ".partial.tif";
        try
        {
            var extent = size * gsd;
            var psi = new ProcessStartInfo("gdal_translate", ["-q", "-of", "GTiff", "-co", "TILED=YES", "-co", "COMPRESS=DEFLATE", "-a_srs", "EPSG:32614",
                "-a_ullr", "500000", "5200000", (500000 + extent).ToString(CultureInfo.InvariantCulture), (5200000 - extent).ToString(CultureInfo.InvariantCulture), vrtPath, partial]);
            using var p = Process.Start(psi) ?? throw new InvalidOperationException("gdal_translate did not start (gdal-bin installed?)");
            await p.WaitForExitAsync();
            if (p.ExitCode != 0) throw new InvalidOperationException($"gdal_translate failed with exit code {p.ExitCode} making {scene}");
            File.Move(partial, scene);
        }
        finally
        {
            File.Delete(vrtPath);
            File.Delete(partial);
        }
        return scene;
    }
}
