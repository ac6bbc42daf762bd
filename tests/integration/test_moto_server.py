"""boto3 against the local moto server: the four AWS APIs the platform writes to."""

import time

import boto3
import pytest

from infra.moto_server import FAKE_CREDENTIALS

pytestmark = pytest.mark.integration


def client(service, endpoint):
    return boto3.client(
        service, endpoint_url=endpoint, region_name="eu-central-1",
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def test_s3_put_and_get(moto_endpoint):
    s3 = client("s3", moto_endpoint)
    s3.create_bucket(Bucket="mobility-lake", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    key = "bronze/telemetry/year=2025/month=01/day=15/hour=14/part-0.parquet"
    s3.put_object(Bucket="mobility-lake", Key=key, Body=b"PAR1...PAR1")
    assert s3.get_object(Bucket="mobility-lake", Key=key)["Body"].read() == b"PAR1...PAR1"


def test_sns_publish(moto_endpoint):
    sns = client("sns", moto_endpoint)
    arn = sns.create_topic(Name="fleet-alerts")["TopicArn"]
    response = sns.publish(TopicArn=arn, Subject="Low Battery: Vehicle 12345", Message="12% battery")
    assert response["MessageId"]


def test_dynamodb_vehicle_status_item(moto_endpoint):
    dynamodb = client("dynamodb", moto_endpoint)
    dynamodb.create_table(
        TableName="vehicle-status",
        KeySchema=[{"AttributeName": "vehicle_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "vehicle_id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="vehicle-status", Item={"vehicle_id": {"N": "12345"}, "battery_percent": {"N": "68"}})
    item = dynamodb.get_item(TableName="vehicle-status", Key={"vehicle_id": {"N": "12345"}})["Item"]
    assert item["battery_percent"] == {"N": "68"}


def test_timestream_write_records(moto_endpoint):
    write = client("timestream-write", moto_endpoint)
    write.create_database(DatabaseName="mobility")
    write.create_table(
        DatabaseName="mobility", TableName="telemetry",
        RetentionProperties={"MemoryStoreRetentionPeriodInHours": 72, "MagneticStoreRetentionPeriodInDays": 1},
    )
    now_ms = str(int(time.time() * 1000))
    response = write.write_records(
        DatabaseName="mobility", TableName="telemetry",
        Records=[{
            "Time": now_ms,
            "Dimensions": [{"Name": "vehicle_id", "Value": "12345"}, {"Name": "zone_id", "Value": "u0yjjd"}],
            "MeasureName": "telemetry", "MeasureValueType": "MULTI",
            "MeasureValues": [
                {"Name": "latitude", "Value": "50.1105", "Type": "DOUBLE"},
                {"Name": "battery_percent", "Value": "68", "Type": "BIGINT"},
            ],
        }],
    )
    assert response["RecordsIngested"]["Total"] == 1
