using NetTopologySuite.Geometries;
using NetTopologySuite.IO;
using ParquetSharp;
using ParquetSharp.IO;
using RsCapRet.Storage;

namespace RsCapRet.Export;

/// <summary>
/// Search results as GeoParquet 1.1 (the map page's "download"): one row per hit in rank order — rank, tile, footprint
/// (WKB, lon/lat), score, relevance, caption, scene, acquisition time and pixel window. A search is at most 1,000 rows,
/// so the file is made in one row group.
/// </summary>
public static class SearchResultExport
{
    public static void WriteGeoParquet(Stream output, IReadOnlyList<TileHit> hits, int offset, IReadOnlyList<double?> relevance)
    {
        if (relevance.Count != hits.Count) throw new ArgumentException("one relevance per hit expected", nameof(relevance));
        var columns = new Column[]
        {
            new Column<int>("rank"), new Column<long>("tile_id"), new Column<byte[]?>("geometry"), new Column<double>("score"),
            new Column<double?>("relevance"), new Column<string?>("caption"), new Column<long>("scene_id"), new Column<string>("scene"),
            new Column<DateTime?>("acquired_at", LogicalType.Timestamp(isAdjustedToUtc: true, TimeUnit.Micros)),
            new Column<int>("px_x"), new Column<int>("px_y"), new Column<int>("px_width"), new Column<int>("px_height"),
        };
        var bbox = new Envelope();
        foreach (var h in hits) if (h.Footprint is { } f) bbox.ExpandToInclude(f.EnvelopeInternal);
        var writer = new WKBWriter(ByteOrder.LittleEndian, handleSRID: false, emitZ: false, emitM: false);
        var metadata = new Dictionary<string, string> { ["geo"] = TileExport.GeoMetadata(bbox) };
        using var stream = new ManagedOutputStream(output, leaveOpen: true);
        using var file = new ParquetFileWriter(stream, columns, Compression.Zstd, metadata);
        using (var group = file.AppendRowGroup())
        {
            using (var w = group.NextColumn().LogicalWriter<int>()) w.WriteBatch(hits.Select((_, i) => offset + i + 1).ToArray());
            using (var w = group.NextColumn().LogicalWriter<long>()) w.WriteBatch(hits.Select(h => h.TileId).ToArray());
            using (var w = group.NextColumn().LogicalWriter<byte[]?>()) w.WriteBatch(hits.Select(h => h.Footprint is { } f ? writer.Write(f) : null).ToArray());
            using (var w = group.NextColumn().LogicalWriter<double>()) w.WriteBatch(hits.Select(h => Math.Round(1 - h.Distance, 6)).ToArray());
            using (var w = group.NextColumn().LogicalWriter<double?>()) w.WriteBatch(relevance.ToArray());
            using (var w = group.NextColumn().LogicalWriter<string?>()) w.WriteBatch(hits.Select(h => h.Caption).ToArray());
            using (var w = group.NextColumn().LogicalWriter<long>()) w.WriteBatch(hits.Select(h => h.SceneId).ToArray());
            using (var w = group.NextColumn().LogicalWriter<string>()) w.WriteBatch(hits.Select(h => h.ScenePath).ToArray());
            using (var w = group.NextColumn().LogicalWriter<DateTime?>()) w.WriteBatch(hits.Select(h => h.AcquiredAt?.UtcDateTime).ToArray());
            using (var w = group.NextColumn().LogicalWriter<int>()) w.WriteBatch(hits.Select(h => h.PxX).ToArray());
            using (var w = group.NextColumn().LogicalWriter<int>()) w.WriteBatch(hits.Select(h => h.PxY).ToArray());
            using (var w = group.NextColumn().LogicalWriter<int>()) w.WriteBatch(hits.Select(h => h.PxWidth).ToArray());
            using (var w = group.NextColumn().LogicalWriter<int>()) w.WriteBatch(hits.Select(h => h.PxHeight).ToArray());
        }
        file.Close();
    }
}
