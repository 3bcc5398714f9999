using RsCapRet.Bench;

var name = args.FirstOrDefault();
var rest = args.Skip(1).ToArray();
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
    case "ingest-child":
        return await IngestBenchmark.ChildAsync(rest[0], rest[1], rest[2] == "1");
    case "caption":
        return ModelBenchmark.Throughput(rest);
    case "train":
        return TrainBenchmark.Run(rest);
    default:
        Console.Error.WriteLine("""
            usage: RsCapRet.Bench <benchmark> [options]
              search  [--tiles N] [--queries Q] [--k K] [--ef 40,100] [--keep]   vector search latency, filtered k rows, recall@10 (needs RSCAPRET_DB)
              load    [--gb 2]                                     synthetic bf16 Llama checkpoint: load time, peak RSS / file size
              caption [--model DIR]                                greedy captioning throughput, batch 1 and 16
              ingest  [--size 20000] [--captions] [--model DIR]    pipeline vs model-only tiles/s, peak RSS on a large synthetic scene
              train   [--config FILE] [--steps 20]                 training step time and samples/s (default: the shipped model's config)
            """);
        return 2;
}
