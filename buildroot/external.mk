include $(sort $(wildcard $(BR2_EXTERNAL_OSECT_PATH)/package/*/*.mk))
