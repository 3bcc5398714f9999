using RsCapRet.Bench;

var name = args.FirstOrDefault();
var rest = args.Skip(1).ToArray();
switch (name)
{
    case "search":
        return await SearchBenchmark.RunAsync(rest);
    default:
        Console.Error.WriteLine("usage: RsCapRet.Bench <benchmark> [options]\n  search [--tiles N] [--queries Q] [--k K] [--keep]   vector search latency and recall (needs RSCAPRET_DB)");
        return 2;
}
