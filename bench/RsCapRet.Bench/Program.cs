using RsCapRet.Bench;

var name = args.FirstOrDefault();
var rest = args.Skip(1).ToArray();
try
{
    switch (name)
    {
        case "search":
            return await SearchBenchmark.RunAsync(rest);
        case "load":
            return await ModelBenchmark.LoadAsync(rest);
        case "load-child":
            return ModelBenchmark.LoadChild(rest[0]);
        case "ingest":
            return await IngestBenchmark.RunAsync(rest);
        case "cells":
            return await CellsBenchmark.RunAsync(rest);
        case "caption":
            return await ModelBenchmark.ThroughputAsync(rest);
        case "train":
            return await TrainBenchmark.RunAsync(rest);
        case "encoder":
            return await EncoderBenchmark.RunAsync(rest);
        case "changes":
            return await ChangesBenchmark.RunAsync(rest);
        case "tiles":
            return await MapTileBenchmark.RunAsync(rest);
        case "export":
            return await ExportBenchmark.RunAsync(rest);
        case "padding":
            return await PaddingBenchmark.RunAsync(rest);
        case "archive":
            return await ArchiveBenchmark.RunAsync(rest);
        case "compare":
            return CompareRuns.Run(rest);
        case "merge":
            return MergeRuns.Run(rest);
    }
}
catch (BenchArgsException e)
{
    Console.Error.WriteLine($"{name}: {e.Message}");
    return 2;
}
Console.Error.WriteLine("""
    usage: RsCapRet.Bench <benchmark> [options] [--rounds 5] [--warmup 1]
      Every benchmark: a warm-up, then --rounds rounds in which its sides take turns (A, B, A, B, ...); it prints per
      side the median with min and max and the per-round values, per-round ratios, the environment, and last one
      JSON line with the same numbers.
      search  [--tiles N] [--queries Q] [--k K] [--ef 40,100] [--hybrid] [--relevance] [--keep]  vector search latency with and without a bbox per ef_search (--hybrid: and hybrid search; --relevance: and the calibrated relevance text queries get), k rows, recall@k (needs RSCAPRET_DB)
      load    [--gb 2]                                                   synthetic bf16 Llama checkpoint loaded in a fresh process per round: time, peak RSS / file size
      caption [--model DIR] [--batches 1,16] [--beams 1,B] [--round-seconds 10]  captioning throughput per batch size and beam width (default greedy and the model's beam_width B)
      ingest  [--size 4480 | --scene FILE] [--captions] [--batch 16] [--model DIR] [--tta 4,8]
                                                                         pipeline vs model-only tiles/s on the same tiles, peak RSS per side, per-stage times; --tta: model only with image vectors the mean of N dihedral views (needs RSCAPRET_DB)
      cells   [--size 2240 | --scene FILE] [--calls 15] [--query trees] [--classify-size 20000]
                                                                         ingest vs ingest --cells tiles/s and bytes per tile; localize p50 for one tile: imagery not cached, cached, stored cells; classify --cells time on a synthetic size² scene (needs RSCAPRET_DB)
      train   [--config FILE] [--steps 10]                               samples/s of training steps, --steps per round (default: the shipped model's config)
      encoder [--backbone DIR] [--batches 1,16,64] [--threads 2] [--round-seconds 3] [--diagnose]
                                                                         TorchSharp ResNet vs ONNX Runtime on the original ONNX file, images/s and ratio
      changes [--side 200] [--k 20] [--queries 3]                        change query between two scenes of side x side tiles: whole scene, bbox, toward (needs RSCAPRET_DB)
      tiles   [--size 20000] [--tiles 32]                                map tiles of a large scene: render p50/p95 ms at a low and a high zoom, and from the disk cache; cold costs apart
      export  [--tiles 1000000] [--formats geoparquet] [--keep]          rows/s of rscapret export from a synthetic catalogue (needs RSCAPRET_DB)
      padding [--per-class 3] [--crops 150x120,112x112,200x96,64x64]    padding of scenes smaller than a tile: cosine of padded crops to the whole UCM val image, zero-shot class kept
      archive [--files 1000] [--renames 100] [--rounds 3]               `index-archive --wait` over small real files, a re-scan with nothing changed, a re-scan after renames (needs RSCAPRET_DB)
      compare FIRST SECOND                                               do two runs' medians agree within each other's spread? (reads the JSON lines)
      merge FILE FILE...                                                 one run's JSON line from runs of the same benchmark in separate processes (their rounds concatenated)
    """);
return 2;
