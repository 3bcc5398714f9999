using RsCapRet.Pipeline;

namespace RsCapRet.Jobs;

/// <summary>What an ingest job found and said: its result and the ingestor's messages (scene description, summary).</summary>
public sealed record IngestJobReport(IngestResult Result, IReadOnlyList<string> Messages);
