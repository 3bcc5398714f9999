using System.Text.Json;
using DuckDB.NET.Data;
using RsCapRet.Cli.Commands;
using RsCapRet.TestSupport;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Export.Tests;

/// <summary>
/// `rscapret export`: each format read back by another reader (DuckDB for GeoParquet, GDAL's ogr2ogr for FlatGeobuf and
/// GeoJSON) and compared row by row with the catalogue: ids, WKB footprints, captions, times, embeddings.
/// </summary>
public sealed class ExportTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-export-");
    public void Dispose() => _dir.Delete(true);

    private sealed record DbRow(long Id, byte[] Wkb, string? Caption, long Scene, float[] Embedding, string Model);

    private async Task<List<DbRow>> CatalogueRows()
    {
        var rows = new List<DbRow>();
        await using var cmd = db.DataSource.CreateCommand("SELECT t.id, ST_AsBinary(t.footprint), t.caption, t.scene_id, t.embedding, m.name || ' ' || m.version FROM tiles t JOIN models m ON m.id = t.model_id ORDER BY t.id");
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync())
            rows.Add(new DbRow(r.GetInt64(0), r.GetFieldValue<byte[]>(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetInt64(3), r.GetFieldValue<Pgvector.Vector>(4).ToArray(), r.GetString(5)));
        return rows;
    }

    [Fact]
    public async Task EachFormatReadsBackAsTheCataloguesRows()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        foreach (var (name, offset) in new[] { ("m_4709963_se_14_060_20180815.tif", 0), ("m_4709963_se_14_060_20200831.tif", 200) })
        {
            var ingest = await Run("ingest", TestScenes.SmallScene(_dir.FullName, name, offset), "--model", model, "--device", "cpu", "--db", db.ConnectionString);
            Assert.True(ingest.Code == 0, ingest.Err);
        }
        var expected = await CatalogueRows();
        Assert.True(expected.Count >= 8);

        // GeoParquet, read by DuckDB: the same rows, byte-identical WKB, the embedding as 256 floats, GeoParquet 1.1 metadata.
        var parquet = Path.Combine(_dir.FullName, "tiles.parquet");
        var export = await Run("export", "--format", "geoparquet", "--out", parquet, "--db", db.ConnectionString);
        Assert.True(export.Code == 0, export.Err);
        Assert.Contains($"{expected.Count} tiles written", export.Out);
        using (var duck = new DuckDBConnection("DataSource=:memory:"))
        {
            duck.Open();
            using var cmd = duck.CreateCommand();
            // DuckDB reads the file as GeoParquet: its geometry column is typed GEOMETRY in lon/lat (OGC:CRS84).
            cmd.CommandText = $"SELECT column_type FROM (DESCRIBE SELECT * FROM read_parquet('{parquet}')) WHERE column_name = 'geometry'";
            Assert.Equal("GEOMETRY('OGC:CRS84')", (string)cmd.ExecuteScalar()!);
            // The stored bytes, to compare with PostGIS's WKB: read the column as plain Parquet.
            cmd.CommandText = "SET enable_geoparquet_conversion = false";
            cmd.ExecuteNonQuery();
            cmd.CommandText = $"SELECT tile_id, geometry, caption, acquired_at, model, embedding FROM read_parquet('{parquet}') ORDER BY tile_id";
            using var r = cmd.ExecuteReader();
            var i = 0;
            while (r.Read())
            {
                var e = expected[i++];
                Assert.Equal(e.Id, r.GetInt64(0));
                Assert.Equal(e.Wkb, (byte[])ReadBlob(r.GetValue(1)));
                Assert.Equal(e.Caption, r.IsDBNull(2) ? null : r.GetString(2));
                Assert.False(r.IsDBNull(3));   // the NAIP-style names carry the date
                Assert.Equal(e.Model, r.GetString(4));
                var embedding = ((System.Collections.IEnumerable)r.GetValue(5)).Cast<object>().Select(Convert.ToSingle).ToArray();
                Assert.Equal(e.Embedding, embedding);
            }
            Assert.Equal(expected.Count, i);
            cmd.CommandText = $"SELECT decode(value) FROM parquet_kv_metadata('{parquet}') WHERE decode(key) = 'geo'";
            using var geo = JsonDocument.Parse((string)cmd.ExecuteScalar()!);
            Assert.Equal("1.1.0", geo.RootElement.GetProperty("version").GetString());
            Assert.Equal("geometry", geo.RootElement.GetProperty("primary_column").GetString());
            var column = geo.RootElement.GetProperty("columns").GetProperty("geometry");
            Assert.Equal("WKB", column.GetProperty("encoding").GetString());
            Assert.Equal(4, column.GetProperty("bbox").GetArrayLength());
        }

        // One scene only.
        var firstScene = expected[0].Scene;
        var sceneOnly = await Run("export", "--format", "geoparquet", "--scene", firstScene.ToString(), "--out", parquet, "--overwrite", "--db", db.ConnectionString);
        Assert.Contains($"{expected.Count(e => e.Scene == firstScene)} tiles written", sceneOnly.Out);

        // GeoJSON and FlatGeobuf, read by GDAL: the same ids, captions and footprints.
        foreach (var (format, file) in new[] { ("geojson", "tiles.geojson"), ("flatgeobuf", "tiles.fgb") })
        {
            var path = Path.Combine(_dir.FullName, file);
            var written = await Run("export", "--format", format, "--out", path, "--db", db.ConnectionString);
            Assert.True(written.Code == 0, written.Err);
            var back = Path.Combine(_dir.FullName, file + ".back.geojson");
            var (code, _, err) = await TestProcess.RunAsync("ogr2ogr", ["-f", "GeoJSON", "-lco", "COORDINATE_PRECISION=15", back, path]);
            Assert.True(code == 0, $"ogr2ogr could not read {file}: {err}");
            using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(back));
            var features = doc.RootElement.GetProperty("features").EnumerateArray().OrderBy(f => f.GetProperty("properties").GetProperty("tile_id").GetInt64()).ToList();
            Assert.Equal(expected.Count, features.Count);
            var wkb = new NetTopologySuite.IO.WKBReader();
            for (var i = 0; i < features.Count; i++)
            {
                var p = features[i].GetProperty("properties");
                Assert.Equal(expected[i].Id, p.GetProperty("tile_id").GetInt64());
                Assert.Equal(expected[i].Caption, p.GetProperty("caption").GetString());
                // GeoJSON keeps the embedding as an array; FlatGeobuf (no list type) as a string holding the JSON array.
                var embedding = p.GetProperty("embedding");
                var values = embedding.ValueKind == JsonValueKind.String ? JsonSerializer.Deserialize<float[]>(embedding.GetString()!)! : embedding.EnumerateArray().Select(v => v.GetSingle()).ToArray();
                Assert.Equal(expected[i].Embedding, values);
                var ring = features[i].GetProperty("geometry").GetProperty("coordinates")[0].EnumerateArray().Select(c => (c[0].GetDouble(), c[1].GetDouble())).ToArray();
                var want = wkb.Read(expected[i].Wkb).Coordinates.Select(c => (c.X, c.Y)).ToArray();
                Assert.Equal(want.Length, ring.Length);
                for (var j = 0; j < want.Length; j++)
                {
                    Assert.Equal(want[j].X, ring[j].Item1, 9);
                    Assert.Equal(want[j].Y, ring[j].Item2, 9);
                }
            }
        }

        var bad = await Run("export", "--format", "geoparquet", "--out", Path.Combine(_dir.FullName, "missing", "x.parquet"), "--db", db.ConnectionString);
        Assert.Equal(CommandAction.UserError, bad.Code);
        Assert.Contains("does not exist", bad.Err);
    }

    private static byte[] ReadBlob(object value) => value switch
    {
        byte[] b => b,
        Stream s => ReadAll(s),
        _ => throw new InvalidOperationException($"unexpected blob type {value.GetType()}"),
    };

    private static byte[] ReadAll(Stream s)
    {
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }
}
