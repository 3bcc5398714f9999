using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using NetTopologySuite.Geometries;
using ParquetSharp;
using RsCapRet.Storage;

namespace RsCapRet.Export;

public enum ExportFormat { GeoParquet, FlatGeobuf, GeoJson }

/// <summary>
/// Writes the catalogue's tiles to GeoParquet 1.1 (ParquetSharp; WKB footprints in lon/lat, the embedding as a list of
/// float32, "geo" metadata with the bbox), GeoJSON, or FlatGeobuf (GDAL's driver through ogr2ogr, from GeoJSON
/// sequence). Rows stream from one database cursor into fixed-size row groups, so memory stays flat whatever the
/// catalogue's size.
/// </summary>
public static class TileExport
{
    public const int RowGroupSize = 10_000;

    public static ExportFormat ParseFormat(string value) => value.ToLowerInvariant() switch
    {
        "geoparquet" or "parquet" => ExportFormat.GeoParquet,
        "flatgeobuf" or "fgb" => ExportFormat.FlatGeobuf,
        "geojson" => ExportFormat.GeoJson,
        _ => throw new FormatException($"--format must be geoparquet, flatgeobuf or geojson, got '{value}'"),
    };

    /// <summary>The format's name as its specification spells it (GeoJSON, not the enum's GeoJson).</summary>
    public static string FormatName(ExportFormat format) => format switch
    {
        ExportFormat.GeoParquet => "GeoParquet",
        ExportFormat.FlatGeobuf => "FlatGeobuf",
        _ => "GeoJSON",
    };

    /// <summary>
    /// Writes the rows to <paramref name="outPath"/>, whatever its extension, through a hidden temporary file beside it
    /// (renamed at the end, removed on failure); returns the row count. An existing file is refused unless
    /// <paramref name="overwrite"/>. Failures are <see cref="ExportException"/>s naming <paramref name="outPath"/> only,
    /// never the temporary files.
    /// </summary>
    public static async Task<long> WriteAsync(CatalogStore store, ExportFilter filter, ExportFormat format, string outPath,
        Func<string, string>? scenePath = null, bool overwrite = false, CancellationToken ct = default)
    {
        var full = Path.GetFullPath(outPath);
        var dir = Path.GetDirectoryName(full) ?? throw new ExportException($"--out: {outPath} is not a file path");
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"--out: folder {dir} does not exist");
        if (Directory.Exists(full)) throw new ExportException($"--out: {outPath} is a folder");
        if (File.Exists(full) && !overwrite) throw new ExportException($"--out: {outPath} exists (pass --overwrite to replace it)");
        // Hidden, unique, beside the target (same file system: the final rename is atomic). The extension is the
        // format's own: GDAL's FlatGeobuf driver writes a folder for a name without ".fgb".
        var extension = format switch { ExportFormat.GeoParquet => ".parquet", ExportFormat.FlatGeobuf => ".fgb", _ => ".geojson" };
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.partial{extension}");
        string Clean(string message) => message.Replace(tmp + ".geojsons", outPath).Replace(tmp, outPath);
        try
        {
            // Can the folder be written at all? Asked before the database is read.
            try { await using (new FileStream(tmp, FileMode.CreateNew, FileAccess.Write)) { } }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException)
            {
                throw new ExportException($"--out: cannot write {outPath}: {Reason(e, Clean)}", e);
            }
            File.Delete(tmp);   // each writer creates its file itself (ogr2ogr will not write over one)
            long count;
            try
            {
                var rows = store.ExportRowsAsync(filter, scenePath ?? (p => p), ct);
                count = format switch
                {
                    ExportFormat.GeoParquet => await WriteGeoParquetAsync(rows, tmp, ct),
                    ExportFormat.GeoJson => await WriteGeoJsonAsync(rows, tmp, sequence: false, embeddingAsText: false, ct),
                    _ => await WriteFlatGeobufAsync(rows, tmp, outPath, ct),
                };
                File.Move(tmp, full, overwrite);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ParquetException or InvalidOperationException && e is not ExportException)
            {
                throw new ExportException($"could not write {outPath}: {Reason(e, Clean)}", e);
            }
            return count;
        }
        finally
        {
            TryDelete(tmp);
            TryDelete(tmp + ".geojsons");
        }
    }

    private static string Reason(Exception e, Func<string, string> clean) => e switch
    {
        UnauthorizedAccessException => "permission denied",
        _ => clean(e.Message),
    };

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    private static async Task<long> WriteGeoParquetAsync(IAsyncEnumerable<ExportRow> rows, string path, CancellationToken ct)
    {
        var columns = new Column[]
        {
            new Column<long>("tile_id"), new Column<byte[]>("geometry"), new Column<string?>("caption"), new Column<string>("scene"),
            new Column<DateTime?>("acquired_at", LogicalType.Timestamp(isAdjustedToUtc: true, TimeUnit.Micros)), new Column<string>("model"),
            new Column<float[]>("embedding"),
        };
        var bbox = new Envelope();
        // ParquetSharp reads the key-value metadata when the file closes: the bbox is filled in as rows are written.
        var metadata = new Dictionary<string, string>();
        using var file = new ParquetFileWriter(path, columns, Compression.Zstd, metadata);
        long count = 0;
        var group = new List<ExportRow>(RowGroupSize);
        await foreach (var row in rows.WithCancellation(ct))
        {
            group.Add(row);
            bbox.ExpandToInclude(row.Bounds);
            if (group.Count == RowGroupSize) { WriteGroup(file, group); count += group.Count; group.Clear(); }
        }
        if (group.Count > 0 || count == 0) { WriteGroup(file, group); count += group.Count; }
        metadata["geo"] = GeoMetadata(bbox);
        file.Close();
        return count;
    }

    private static void WriteGroup(ParquetFileWriter file, List<ExportRow> rows)
    {
        using var group = file.AppendRowGroup();
        using (var w = group.NextColumn().LogicalWriter<long>()) w.WriteBatch(rows.Select(r => r.TileId).ToArray());
        using (var w = group.NextColumn().LogicalWriter<byte[]>()) w.WriteBatch(rows.Select(r => r.FootprintWkb).ToArray());
        using (var w = group.NextColumn().LogicalWriter<string?>()) w.WriteBatch(rows.Select(r => r.Caption).ToArray());
        using (var w = group.NextColumn().LogicalWriter<string>()) w.WriteBatch(rows.Select(r => r.Scene).ToArray());
        using (var w = group.NextColumn().LogicalWriter<DateTime?>()) w.WriteBatch(rows.Select(r => r.AcquiredAt?.UtcDateTime).ToArray());
        using (var w = group.NextColumn().LogicalWriter<string>()) w.WriteBatch(rows.Select(r => r.Model).ToArray());
        using (var w = group.NextColumn().LogicalWriter<float[]>()) w.WriteBatch(rows.Select(r => r.Embedding).ToArray());
    }

    /// <summary>GeoParquet 1.1 file metadata; no "crs" member means OGC:CRS84 (lon/lat on WGS84), which the footprints are.</summary>
    private static readonly string[] PolygonOnly = ["Polygon"];

    public static string GeoMetadata(Envelope bbox) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["version"] = "1.1.0",
        ["primary_column"] = "geometry",
        ["columns"] = new Dictionary<string, object>
        {
            ["geometry"] = new Dictionary<string, object>
            {
                ["encoding"] = "WKB",
                ["geometry_types"] = PolygonOnly,
                ["bbox"] = bbox.IsNull ? Array.Empty<double>() : new[] { bbox.MinX, bbox.MinY, bbox.MaxX, bbox.MaxY },
            },
        },
    });

    private static async Task<long> WriteGeoJsonAsync(IAsyncEnumerable<ExportRow> rows, string path, bool sequence, bool embeddingAsText, CancellationToken ct)
    {
        await using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        var reader = new NetTopologySuite.IO.WKBReader();
        long count = 0;
        var options = new JsonWriterOptions { Indented = false };
        if (!sequence) await stream.WriteAsync("{\"type\":\"FeatureCollection\",\"features\":[\n"u8.ToArray(), ct);
        await foreach (var row in rows.WithCancellation(ct))
        {
            if (!sequence && count > 0) await stream.WriteAsync(",\n"u8.ToArray(), ct);
            using (var w = new Utf8JsonWriter(stream, options))
            {
                GeoJsonGeometry.WriteFeature(w, row.TileId, reader.Read(row.FootprintWkb), p =>
                {
                    p.WriteNumber("tile_id", row.TileId);
                    if (row.Caption is null) p.WriteNull("caption"); else p.WriteString("caption", row.Caption);
                    p.WriteString("scene", row.Scene);
                    if (row.AcquiredAt is { } t) p.WriteString("acquired_at", t.ToString("O", CultureInfo.InvariantCulture)); else p.WriteNull("acquired_at");
                    p.WriteString("model", row.Model);
                    if (embeddingAsText) p.WriteString("embedding", JsonSerializer.Serialize(row.Embedding));
                    else
                    {
                        p.WriteStartArray("embedding");
                        foreach (var v in row.Embedding) p.WriteNumberValue(v);
                        p.WriteEndArray();
                    }
                });
            }
            if (sequence) await stream.WriteAsync("\n"u8.ToArray(), ct);
            count++;
        }
        if (!sequence) await stream.WriteAsync("\n]}\n"u8.ToArray(), ct);
        return count;
    }

    /// <summary>
    /// FlatGeobuf through GDAL's driver: rows go to a GeoJSON sequence (read by GDAL as a stream) and ogr2ogr writes
    /// the file with its spatial index. FlatGeobuf has no list type, so the embedding is a string holding its JSON array.
    /// </summary>
    private static async Task<long> WriteFlatGeobufAsync(IAsyncEnumerable<ExportRow> rows, string path, string shownPath, CancellationToken ct)
    {
        var seq = path + ".geojsons";
        try
        {
            var count = await WriteGeoJsonAsync(rows, seq, sequence: true, embeddingAsText: true, ct);
            var psi = new ProcessStartInfo("ogr2ogr") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "-f", "FlatGeobuf", "-nln", "tiles", "-a_srs", "EPSG:4326", path, "GeoJSONSeq:" + seq }) psi.ArgumentList.Add(a);
            Process p;
            try { p = Process.Start(psi)!; }
            catch (System.ComponentModel.Win32Exception) { throw new InvalidOperationException("FlatGeobuf export needs GDAL's ogr2ogr (apt-get install gdal-bin)"); }
            using (p)
            {
                var err = await p.StandardError.ReadToEndAsync(ct);
                await p.WaitForExitAsync(ct);
                if (p.ExitCode != 0)
                    throw new InvalidOperationException($"ogr2ogr could not write {shownPath}: {err.Trim().Replace(seq, shownPath).Replace(path, shownPath)}");
            }
            return count;
        }
        finally { File.Delete(seq); }
    }
}

/// <summary>An export could not be written (the message names the output path the user gave, nothing internal).</summary>
public sealed class ExportException(string message, Exception? inner = null) : IOException(message, inner);
