using System.Text.Json;
using NetTopologySuite.Geometries;

namespace RsCapRet.Storage;

/// <summary>
/// Writes footprints as GeoJSON geometry objects (lon/lat, rings as stored): polygons and multipolygons, anything else
/// or an empty geometry as null. One writer for search results, change pairs, heat maps, land-use maps and exports.
/// </summary>
public static class GeoJsonGeometry
{
    public static void Write(Utf8JsonWriter w, Geometry? g)
    {
        switch (g)
        {
            case Polygon p when !p.IsEmpty:
                w.WriteStartObject();
                w.WriteString("type", "Polygon");
                w.WritePropertyName("coordinates");
                Rings(w, p);
                w.WriteEndObject();
                break;
            case MultiPolygon mp when !mp.IsEmpty:
                w.WriteStartObject();
                w.WriteString("type", "MultiPolygon");
                w.WriteStartArray("coordinates");
                foreach (var part in mp.Geometries.Cast<Polygon>()) Rings(w, part);
                w.WriteEndArray();
                w.WriteEndObject();
                break;
            default:
                w.WriteNullValue();
                break;
        }
    }

    /// <summary>
    /// One Feature object: "type", "id" (when given), "geometry" and "properties", the properties written by
    /// <paramref name="properties"/> inside their object. One writer for every FeatureCollection the project answers.
    /// </summary>
    public static void WriteFeature(Utf8JsonWriter w, long? id, Geometry? geometry, Action<Utf8JsonWriter> properties)
    {
        w.WriteStartObject();
        w.WriteString("type", "Feature");
        if (id is { } i) w.WriteNumber("id", i);
        w.WritePropertyName("geometry");
        Write(w, geometry);
        w.WriteStartObject("properties");
        properties(w);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void Rings(Utf8JsonWriter w, Polygon p)
    {
        w.WriteStartArray();
        foreach (var ring in new[] { p.ExteriorRing }.Concat(p.InteriorRings))
        {
            w.WriteStartArray();
            foreach (var c in ring.Coordinates) { w.WriteStartArray(); w.WriteNumberValue(c.X); w.WriteNumberValue(c.Y); w.WriteEndArray(); }
            w.WriteEndArray();
        }
        w.WriteEndArray();
    }
}
